// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Shard commitments: a salted hash of each share that the store keeps, so
 * nexus can check a single shard (from a keeper or an operator restore)
 * before it has the root key, and so commitments cannot be keyed by it.
 *
 * `commitment = HMAC-SHA256(key = storeId,
 *   "spike/v1/shard-commitment" ‖ index byte ‖ 32 share bytes)`
 *
 * @module
 */
import { constantTimeEqual, zero } from "../crypto/zero.ts";
import {
  assertShard,
  isShardIndex,
  type Shard,
  SHARD_VALUE_BYTES,
} from "./shard.ts";
import { ShardError } from "./shard_error.ts";

/** Length of a commitment in bytes. */
export const COMMITMENT_BYTES = 32;

const LABEL = new TextEncoder().encode("spike/v1/shard-commitment");

function importStoreKey(storeId: Uint8Array): Promise<CryptoKey> {
  if (storeId.length === 0) throw new ShardError("Store id must not be empty");
  return crypto.subtle.importKey(
    "raw",
    new Uint8Array(storeId),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
}

async function commit(
  key: CryptoKey,
  shard: Shard,
): Promise<Uint8Array<ArrayBuffer>> {
  const message = new Uint8Array(LABEL.length + 1 + SHARD_VALUE_BYTES);
  try {
    message.set(LABEL);
    message[LABEL.length] = shard.index;
    message.set(shard.value, LABEL.length + 1);
    return new Uint8Array(await crypto.subtle.sign("HMAC", key, message));
  } finally {
    zero(message);
  }
}

/**
 * Computes the commitment of one shard.
 *
 * @param storeId the store's random id (non-empty), the HMAC key
 * @param shard a valid shard
 * @returns the 32-byte commitment
 * @throws {ShardError} for an invalid shard or an empty store id
 */
export async function shardCommitment(
  storeId: Uint8Array,
  shard: Shard,
): Promise<Uint8Array<ArrayBuffer>> {
  assertShard(shard);
  return commit(await importStoreKey(storeId), shard);
}

/**
 * Computes the commitments of a complete split.
 *
 * @param storeId the store's random id (non-empty), the HMAC key
 * @param shards shards with indexes exactly 1..n, in any order
 * @returns n commitments; element `i - 1` commits to share `i`
 * @throws {ShardError} for an invalid shard, a duplicate or missing index,
 * or an empty store id
 */
export async function computeCommitments(
  storeId: Uint8Array,
  shards: readonly Shard[],
): Promise<Uint8Array<ArrayBuffer>[]> {
  const byIndex: (Shard | undefined)[] = new Array(shards.length);
  for (const shard of shards) {
    assertShard(shard);
    if (shard.index > shards.length) {
      throw new ShardError(
        `Shard indexes must be 1 to ${shards.length}, got ${shard.index}`,
      );
    }
    if (byIndex[shard.index - 1] !== undefined) {
      throw new ShardError(`Duplicate shard index ${shard.index}`);
    }
    byIndex[shard.index - 1] = shard;
  }
  const key = await importStoreKey(storeId);
  // Indexes are distinct and within 1..n, so every slot is filled.
  return Promise.all(byIndex.map((shard) => commit(key, shard!)));
}

/**
 * Whether a shard matches the commitment stored for its index.
 *
 * @param storeId the store's random id, the HMAC key
 * @param shard the shard to check (may be malformed)
 * @param commitments the stored commitments, element `i - 1` for share `i`
 * @returns true only for a well-formed shard whose commitment matches;
 * false for an index outside 1..commitments.length or a wrong value length
 * @throws {ShardError} for an empty store id
 */
export async function verifyShard(
  storeId: Uint8Array,
  shard: Shard,
  commitments: readonly Uint8Array[],
): Promise<boolean> {
  if (!isShardIndex(shard.index) || shard.index > commitments.length) {
    return false;
  }
  if (
    !(shard.value instanceof Uint8Array) ||
    shard.value.length !== SHARD_VALUE_BYTES
  ) {
    return false;
  }
  const expected = commitments[shard.index - 1]!;
  const actual = await commit(await importStoreKey(storeId), shard);
  return constantTimeEqual(actual, expected);
}
