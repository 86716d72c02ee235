// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The shard type: one Shamir share of the 32-byte root key.
 *
 * @module
 */
import { ShardError } from "./shard_error.ts";

/** Length of a root key and of every share value, in bytes. */
export const SHARD_VALUE_BYTES = 32;

/** Largest share count and index: GF(2^8) has 255 non-zero x coordinates. */
export const MAX_SHARES = 255;

/** One Shamir share: the polynomial's value at x = `index`, byte by byte. */
export interface Shard {
  /** The x coordinate, 1..255; keeper `i` holds share `i`. */
  readonly index: number;
  /** The 32 share bytes. */
  readonly value: Uint8Array;
}

/**
 * Whether `index` is a possible share index (an integer in 1..255).
 *
 * @param index the candidate index
 * @returns true for 1..255
 */
export function isShardIndex(index: number): boolean {
  return Number.isInteger(index) && index >= 1 && index <= MAX_SHARES;
}

/**
 * Throws unless `shard` has an index in 1..255 and a 32-byte value.
 *
 * @param shard the shard to check
 * @throws {ShardError} when the index or the value length is wrong
 */
export function assertShard(shard: Shard): void {
  if (!isShardIndex(shard.index)) {
    throw new ShardError(
      `Shard index must be an integer from 1 to ${MAX_SHARES}`,
    );
  }
  if (!(shard.value instanceof Uint8Array)) {
    throw new ShardError("Shard value must be a byte array");
  }
  if (shard.value.length !== SHARD_VALUE_BYTES) {
    throw new ShardError(
      `Shard value must be ${SHARD_VALUE_BYTES} bytes, got ${shard.value.length}`,
    );
  }
}
