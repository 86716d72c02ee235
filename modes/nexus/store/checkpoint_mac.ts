// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Signing and checking store checkpoints (`lib/wire/checkpoint.ts`) and
 * audit anchors with the integrity key: HMAC-SHA256 of the JSON
 * `["spike/v3/checkpoint", store, epoch, generation, digest, audit seq,
 * audit hash]` (the audit fields null when absent), and of
 * `["spike/v3/audit-anchor", store, name, seq, hash]` (name: the replica's,
 * "" for one nexus).
 *
 * @module
 */
import type { AuditHead } from "../../../lib/audit/chain.ts";
import type { HmacSha256 } from "../../../lib/crypto/sha256.ts";
import type { Checkpoint } from "../../../lib/wire/checkpoint.ts";
import type { AuditAnchorRow } from "./backend.ts";
import { type IntegrityRow, sameBytes } from "./store_digest.ts";

export type { AuditHead };

const encoder = new TextEncoder();

function mac(key: HmacSha256, fields: Omit<Checkpoint, "mac">): Uint8Array {
  return key.mac(encoder.encode(JSON.stringify([
    "spike/v3/checkpoint",
    fields.store,
    fields.epoch,
    fields.generation,
    fields.digest,
    fields.audit?.seq ?? null,
    fields.audit?.hash ?? null,
  ])));
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
  key: HmacSha256,
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
  key: HmacSha256,
  storeId: Uint8Array,
  checkpoint: Checkpoint,
): boolean {
  if (checkpoint.store !== storeId.toHex()) return false;
  return sameBytes(
    mac(key, checkpoint),
    Uint8Array.fromHex(checkpoint.mac),
  );
}

function anchorMac(
  key: HmacSha256,
  storeId: Uint8Array,
  name: string,
  head: AuditHead,
) {
  return key.mac(encoder.encode(JSON.stringify([
    "spike/v3/audit-anchor",
    storeId.toHex(),
    name,
    head.seq,
    head.hash.toHex(),
  ])));
}

/**
 * The audit anchor row of a chain head.
 *
 * @param key the integrity key
 * @param storeId the store id
 * @param name whose chain
 * @param head the chain head
 * @returns the row to store
 */
export function signAuditAnchor(
  key: HmacSha256,
  storeId: Uint8Array,
  name: string,
  head: AuditHead,
): AuditAnchorRow {
  return {
    seq: head.seq,
    hash: new Uint8Array(head.hash),
    mac: anchorMac(key, storeId, name, head),
  };
}

/**
 * Whether a stored audit anchor was signed for this store with its key.
 *
 * @param key the integrity key
 * @param storeId the store id
 * @param name whose chain
 * @param row the stored row
 * @returns true when it verifies
 */
export function verifyAuditAnchor(
  key: HmacSha256,
  storeId: Uint8Array,
  name: string,
  row: AuditAnchorRow,
): boolean {
  return row.hash.length === 32 &&
    sameBytes(anchorMac(key, storeId, name, row), row.mac);
}
