// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Signing and checking store checkpoints (`lib/wire/checkpoint.ts`) with
 * the integrity key: HMAC-SHA256 of the JSON
 * `["spike/v3/checkpoint", store, epoch, generation, digest, audit seq,
 * audit hash]` (the audit fields null when absent).
 *
 * @module
 */
import { createHmac, type KeyObject } from "node:crypto";
import type { Checkpoint } from "../../../lib/wire/checkpoint.ts";
import { sameBytes } from "./store_digest.ts";
import type { IntegrityRow } from "./store_digest.ts";

/** An audit chain head: the sequence number and hash of a line. */
export interface AuditHead {
  /** The line's sequence number. */
  readonly seq: number;
  /** SHA-256 of the line, 32 bytes. */
  readonly hash: Uint8Array;
}

function mac(key: KeyObject, fields: Omit<Checkpoint, "mac">): Uint8Array {
  return createHmac("sha256", key).update(JSON.stringify([
    "spike/v3/checkpoint",
    fields.store,
    fields.epoch,
    fields.generation,
    fields.digest,
    fields.audit?.seq ?? null,
    fields.audit?.hash ?? null,
  ])).digest();
}

/**
 * A signed checkpoint of a store's integrity row and audit head.
 *
 * @param key the integrity key
 * @param storeId the store id
 * @param row the integrity row
 * @param audit the audit chain's head, when anchored
 * @returns the checkpoint
 */
export function signCheckpoint(
  key: KeyObject,
  storeId: Uint8Array,
  row: IntegrityRow,
  audit?: AuditHead,
): Checkpoint {
  const fields = {
    store: storeId.toHex(),
    epoch: row.epoch,
    generation: row.generation,
    digest: row.digest.toHex(),
    ...(audit ? { audit: { seq: audit.seq, hash: audit.hash.toHex() } } : {}),
  };
  return { ...fields, mac: mac(key, fields).toHex() };
}

/**
 * Whether a checkpoint belongs to this store and carries a valid MAC.
 *
 * @param key the integrity key
 * @param storeId the store id
 * @param checkpoint a well-formed checkpoint
 * @returns true when it was signed with this store's key
 */
export function verifyCheckpoint(
  key: KeyObject,
  storeId: Uint8Array,
  checkpoint: Checkpoint,
): boolean {
  if (checkpoint.store !== storeId.toHex()) return false;
  return sameBytes(
    mac(key, checkpoint),
    Uint8Array.fromHex(checkpoint.mac),
  );
}
