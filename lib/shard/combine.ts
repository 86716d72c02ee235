// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Reconstruction of the root key from shards with the
 * `shamir-secret-sharing` package's `combine`.
 *
 * @module
 */
import { combine } from "shamir-secret-sharing";
import { zero } from "../crypto/zero.ts";
import { shardToLibraryFormat } from "./library_format.ts";
import { assertShard, type Shard, SHARD_VALUE_BYTES } from "./shard.ts";
import { ShardError } from "./shard_error.ts";

/** Options for {@linkcode combineShards}. */
export interface CombineOptions {
  /**
   * Accept a single shard, for a threshold-1 split where every share is the
   * root key itself; the result is then a copy of that shard's value.
   */
  readonly allowThresholdOne?: boolean;
}

/**
 * Reconstructs the root key by interpolating the shards at x = 0.
 *
 * It cannot tell whether enough shards were given: fewer than the threshold
 * yields a wrong key, so the caller checks the result (key check value)
 * or verifies each shard against its commitment first.
 *
 * @param shards at least 2 shards with distinct indexes (or exactly 1 with
 * `allowThresholdOne`); not modified
 * @param options `allowThresholdOne` to accept a single shard
 * @returns the 32-byte key; the caller zeroes it
 * @throws {ShardError} for too few shards, an invalid shard or a duplicate
 * index
 */
export async function combineShards(
  shards: readonly Shard[],
  options: CombineOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const allowOne = options.allowThresholdOne ?? false;
  if (shards.length === 0 || (shards.length === 1 && !allowOne)) {
    throw new ShardError(
      `At least 2 shards are needed to reconstruct the key, got ${shards.length}`,
    );
  }
  const seen = new Set<number>();
  for (const shard of shards) {
    assertShard(shard);
    if (seen.has(shard.index)) {
      throw new ShardError(`Duplicate shard index ${shard.index}`);
    }
    seen.add(shard.index);
  }
  if (shards.length === 1) return new Uint8Array(shards[0]!.value);

  const encoded = shards.map(shardToLibraryFormat);
  let combined: Uint8Array | undefined;
  try {
    combined = await combine(encoded);
    if (combined.length !== SHARD_VALUE_BYTES) {
      throw new ShardError("Reconstructed key has the wrong length");
    }
    // Return an ArrayBuffer-backed copy that WebCrypto accepts.
    return new Uint8Array(combined);
  } finally {
    zero(combined, ...encoded);
  }
}
