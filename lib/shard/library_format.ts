// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Conversion between {@linkcode Shard} and the share encoding of the
 * `shamir-secret-sharing` package: the value bytes followed by one x byte.
 *
 * @module
 */
import {
  assertShard,
  isShardIndex,
  type Shard,
  SHARD_VALUE_BYTES,
} from "./shard.ts";
import { ShardError } from "./shard_error.ts";

/** Length of a share in the library encoding: 32 value bytes + x byte. */
export const LIBRARY_SHARE_BYTES = SHARD_VALUE_BYTES + 1;

/**
 * Encodes a shard as the library's `combine` expects it.
 *
 * @param shard a valid shard
 * @returns a new 33-byte array `value ‖ index`; the caller zeroes it
 * @throws {ShardError} when the shard is invalid
 */
export function shardToLibraryFormat(shard: Shard): Uint8Array<ArrayBuffer> {
  assertShard(shard);
  const encoded = new Uint8Array(LIBRARY_SHARE_BYTES);
  encoded.set(shard.value);
  encoded[SHARD_VALUE_BYTES] = shard.index;
  return encoded;
}

/**
 * Decodes a share in the library encoding.
 *
 * @param encoded 33 bytes `value ‖ x`, x in 1..255 (not modified)
 * @returns a shard with a copy of the value bytes
 * @throws {ShardError} for a wrong length or x = 0
 */
export function shardFromLibraryFormat(encoded: Uint8Array): Shard {
  if (encoded.length !== LIBRARY_SHARE_BYTES) {
    throw new ShardError(
      `Encoded share must be ${LIBRARY_SHARE_BYTES} bytes, got ${encoded.length}`,
    );
  }
  const index = encoded[SHARD_VALUE_BYTES]!;
  if (!isShardIndex(index)) {
    throw new ShardError("Encoded share has x coordinate 0");
  }
  return { index, value: encoded.slice(0, SHARD_VALUE_BYTES) };
}
