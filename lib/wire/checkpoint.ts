// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The store checkpoint nexus hands each keeper with its shard (field
 * `checkpoint` of `POST /v1/store/contribute`, and of the shard answer): the
 * store id, the rollback epoch, the store generation and digest, the audit
 * chain's head, and a MAC under the integrity key (kept in the keyring the
 * root key wraps, so it outlives a rekey). A keeper cannot check the MAC
 * (it has no key); it checks the shape and keeps the newest checkpoint of
 * its store, in memory only. Nexus checks the MAC after a restart, and a
 * store older than the newest valid checkpoint is held.
 *
 * Wire form (every field required except `audit`):
 * `{"store": hex(16 bytes), "epoch": n, "generation": n,
 *   "digest": hex(32), "audit": {"seq": n, "hash": hex(32)},
 *   "mac": hex(32)}`.
 *
 * @module
 */
import type { JsonValue } from "./json_bytes.ts";

/** A store checkpoint. */
export interface Checkpoint {
  /** The store id, 32 lowercase hex digits. */
  readonly store: string;
  /** Rollbacks accepted so far; orders before the generation. */
  readonly epoch: number;
  /** Writes the store held. */
  readonly generation: number;
  /** The store digest, 64 lowercase hex digits. */
  readonly digest: string;
  /** The audit chain's head as anchored, when nexus writes one. */
  readonly audit?: { readonly seq: number; readonly hash: string };
  /** HMAC-SHA256 of the fields above, 64 lowercase hex digits. */
  readonly mac: string;
}

const hex = (value: unknown, bytes: number): value is string =>
  typeof value === "string" && value.length === bytes * 2 &&
  /^[0-9a-f]*$/.test(value);

const count = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

function isObject(
  value: JsonValue | undefined,
): value is { [key: string]: JsonValue } {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function onlyKeys(value: object, keys: readonly string[]): boolean {
  return Object.keys(value).every((k) => keys.includes(k));
}

/**
 * Reads a checkpoint from parsed JSON, checking its shape only.
 *
 * @param value the `checkpoint` field
 * @returns the checkpoint, or undefined when it is malformed
 */
export function parseCheckpoint(
  value: JsonValue | undefined,
): Checkpoint | undefined {
  if (!isObject(value)) return undefined;
  const { store, epoch, generation, digest, audit, mac } = value;
  if (
    !onlyKeys(value, [
      "store",
      "epoch",
      "generation",
      "digest",
      "audit",
      "mac",
    ]) ||
    !hex(store, 16) || !count(epoch) || !count(generation) ||
    !hex(digest, 32) || !hex(mac, 32)
  ) {
    return undefined;
  }
  if (audit === undefined || audit === null) {
    return { store, epoch, generation, digest, mac };
  }
  if (
    !isObject(audit) || !onlyKeys(audit, ["seq", "hash"]) ||
    !count(audit.seq) || !hex(audit.hash, 32)
  ) {
    return undefined;
  }
  return {
    store,
    epoch,
    generation,
    digest,
    audit: { seq: audit.seq, hash: audit.hash },
    mac,
  };
}

/**
 * Orders checkpoints of one store: by epoch, then generation, then the
 * audit chain's head.
 *
 * @param a one checkpoint
 * @param b another
 * @returns negative when `a` is older, 0 when level, positive when newer
 */
export function compareCheckpoints(a: Checkpoint, b: Checkpoint): number {
  return a.epoch - b.epoch || a.generation - b.generation ||
    (a.audit?.seq ?? -1) - (b.audit?.seq ?? -1);
}

/**
 * The JSON text of a checkpoint, fields in wire order.
 *
 * @param checkpoint the checkpoint
 * @returns the JSON object text
 */
export function checkpointJson(checkpoint: Checkpoint): string {
  const { store, epoch, generation, digest, audit, mac } = checkpoint;
  return JSON.stringify({
    store,
    epoch,
    generation,
    digest,
    ...(audit ? { audit: { seq: audit.seq, hash: audit.hash } } : {}),
    mac,
  });
}
