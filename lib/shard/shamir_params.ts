// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Validation of the Shamir share count and threshold.
 *
 * @module
 */
import { MAX_SHARES } from "./shard.ts";
import { ShardError } from "./shard_error.ts";

/**
 * Throws unless `1 ≤ threshold ≤ shares ≤ 255`, all integers, and
 * `threshold ≥ 2` unless `allowThresholdOne` (with threshold 1 every share
 * IS the root key, so it is refused by default).
 *
 * @param shares the number of shares (keepers)
 * @param threshold how many shares reconstruct the key
 * @param allowThresholdOne accept threshold 1
 * @throws {ShardError} naming the violated rule
 */
export function validateShamirParams(
  shares: number,
  threshold: number,
  allowThresholdOne = false,
): void {
  if (!Number.isInteger(shares) || !Number.isInteger(threshold)) {
    throw new ShardError("Shamir shares and threshold must be integers");
  }
  if (shares < 1 || shares > MAX_SHARES) {
    throw new ShardError(
      `Shamir shares must be from 1 to ${MAX_SHARES}, got ${shares}`,
    );
  }
  if (threshold < 1) {
    throw new ShardError(
      `Shamir threshold must be at least 1, got ${threshold}`,
    );
  }
  if (threshold > shares) {
    throw new ShardError(
      `Shamir threshold (${threshold}) cannot exceed shares (${shares})`,
    );
  }
  if (threshold === 1 && !allowThresholdOne) {
    throw new ShardError(
      "Shamir threshold 1 makes every shard a copy of the root key; it must be at least 2",
    );
  }
}
