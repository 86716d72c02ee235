// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The store digest of schema 3: one keyed digest of every secret head's
 * revision and of the policy set's generation, kept in the integrity row
 * with the store generation it stands for, and MACed with the store id.
 *
 * Why revisions are enough: every head is sealed for its revision, every
 * version row is checked against its head on read, and every policy row
 * against the policy set, which is sealed for its generation. So the set of
 * `(path, revision)` pairs plus the policy generation names exactly one
 * genuine state of every sealed row; the digest binds that set.
 *
 * Shape (stable on disk, the same for every backend):
 * - a path falls in bucket `fnv1a32(utf8(path)) mod 4096`;
 * - a bucket's MAC is HMAC-SHA256 over the JSON
 *   `["spike/v3/bucket", bucket, [path, …], [revision, …]]`, paths by code
 *   point ascending, revisions in the same order; an empty bucket
 *   contributes nothing;
 * - the policy set contributes HMAC of `["spike/v3/policy-set", generation]`
 *   once it exists;
 * - the digest is the XOR of those MACs, so a write replaces one bucket's
 *   MAC (about 25 entries at 100,000 paths) and, for a policy write, the
 *   policy set's;
 * - the generation is the number of writes the store holds: the sum of the
 *   revisions plus the policy generation (revisions and generations only
 *   grow, and every write adds one to exactly one of them);
 * - the row's MAC is HMAC of
 *   `["spike/v3/integrity", storeId hex, epoch, generation, digest hex]`.
 *   The epoch counts accepted rollbacks (`spike pilot operator
 *   accept-rollback`), so a store accepted older than a checkpoint orders
 *   after it.
 *
 * A whole-store check hashes each bucket in one HMAC call, so 100,000
 * paths take 4,096 calls instead of 100,000.
 *
 * @module
 */
import type { HmacSha256 } from "../../../lib/crypto/sha256.ts";

/** The number of digest buckets. */
export const DIGEST_BUCKETS = 4096;
/** Bytes of the digest and of every MAC. */
export const DIGEST_BYTES = 32;

const encoder = new TextEncoder();

/** The store's integrity row (schema 3). */
export interface IntegrityRow {
  /** Accepted rollbacks so far; orders before the generation. */
  readonly epoch: number;
  /** Writes the store holds: revisions summed plus the policy generation. */
  readonly generation: number;
  /** XOR of the bucket MACs and the policy set's MAC. */
  readonly digest: Uint8Array<ArrayBuffer>;
  /** MAC of the store id, epoch, generation and digest. */
  readonly mac: Uint8Array<ArrayBuffer>;
}

/**
 * The bucket of a secret path.
 *
 * @param path the path
 * @returns 0 to {@linkcode DIGEST_BUCKETS} - 1
 */
export function bucketOf(path: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) {
    const unit = path.charCodeAt(i);
    // Paths are ASCII (validation); anything else hashes its UTF-8 bytes.
    if (unit >= 0x80) return fnvBytes(encoder.encode(path));
    h = Math.imul(h ^ unit, 0x01000193);
  }
  return (h >>> 0) % DIGEST_BUCKETS;
}

function fnvBytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const byte of bytes) h = Math.imul(h ^ byte, 0x01000193);
  return (h >>> 0) % DIGEST_BUCKETS;
}

function hmac(key: HmacSha256, message: string): Uint8Array<ArrayBuffer> {
  return key.mac(encoder.encode(message));
}

/**
 * The MAC of one bucket.
 *
 * @param key the integrity key
 * @param bucket the bucket number
 * @param paths its paths, by code point ascending
 * @param revisions their revisions, in the same order
 * @returns the MAC
 */
export function bucketMac(
  key: HmacSha256,
  bucket: number,
  paths: readonly string[],
  revisions: readonly number[],
): Uint8Array<ArrayBuffer> {
  return hmac(
    key,
    JSON.stringify(["spike/v3/bucket", bucket, paths, revisions]),
  );
}

/**
 * What the policy set adds to the digest.
 *
 * @param key the integrity key
 * @param generation the policy set's generation (0: no set yet)
 * @returns its MAC, or zeros before the first policy write
 */
export function policySetMac(
  key: HmacSha256,
  generation: number,
): Uint8Array<ArrayBuffer> {
  return generation === 0
    ? new Uint8Array(DIGEST_BYTES)
    : hmac(key, JSON.stringify(["spike/v3/policy-set", generation]));
}

/**
 * The MAC of an integrity row.
 *
 * @param key the integrity key
 * @param storeId the store id
 * @param row epoch, generation and digest
 * @returns the MAC
 */
export function integrityMac(
  key: HmacSha256,
  storeId: Uint8Array,
  row: Pick<IntegrityRow, "epoch" | "generation" | "digest">,
): Uint8Array<ArrayBuffer> {
  return hmac(
    key,
    JSON.stringify([
      "spike/v3/integrity",
      storeId.toHex(),
      row.epoch,
      row.generation,
      row.digest.toHex(),
    ]),
  );
}

/**
 * XORs `source` into `target`.
 *
 * @param target changed in place
 * @param source the bytes to add
 */
export function xorInto(target: Uint8Array, source: Uint8Array): void {
  for (let i = 0; i < target.length; i++) target[i]! ^= source[i]!;
}

/**
 * Compares two byte strings in time independent of where they differ.
 *
 * @param a first
 * @param b second
 * @returns whether they are equal
 */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
