// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Deterministic Shamir split of the root key over GF(2^8).
 *
 * The polynomial coefficients are derived from the root key with HKDF, so
 * the same key and threshold always give the same shares: nexus can
 * recompute every keeper's share after a restart, and exported recovery
 * shards stay valid until the root key changes.
 *
 * @module
 */
import { hkdf } from "../crypto/kdf.ts";
import { isAllZero, zero } from "../crypto/zero.ts";
import { gfMul } from "./gf256.ts";
import { type Shard, SHARD_VALUE_BYTES } from "./shard.ts";
import { ShardError } from "./shard_error.ts";
import { validateShamirParams } from "./shamir_params.ts";

/** Options for {@linkcode splitRootKey}. */
export interface SplitOptions {
  /** Accept threshold 1, where every share equals the root key. */
  readonly allowThresholdOne?: boolean;
}

/**
 * The HKDF info string for the coefficients of a threshold-`t` polynomial.
 * Including `t` keeps polynomials of different degrees unrelated.
 */
function coefficientInfo(threshold: number): string {
  return `spike/v1/shard-coefficients/t=${threshold}`;
}

/**
 * Splits the 32-byte root key into `shares` shares, any `threshold` of which
 * reconstruct it. Share `i` (i = 1..shares) is the polynomial at x = i.
 * Deterministic: the same key and threshold give identical shares, and
 * share `i` does not depend on `shares`.
 *
 * @param rootKey the 32-byte root key (not modified)
 * @param shares how many shares to make, 1..255
 * @param threshold how many shares reconstruct the key, 2..shares
 * @param options `allowThresholdOne` to accept threshold 1
 * @returns shares 1..`shares`, in index order; the caller zeroes the values
 * @throws {ShardError} for bad parameters or a key that is not 32 bytes or
 * is all zeros
 */
export async function splitRootKey(
  rootKey: Uint8Array,
  shares: number,
  threshold: number,
  options: SplitOptions = {},
): Promise<Shard[]> {
  validateShamirParams(shares, threshold, options.allowThresholdOne ?? false);
  if (rootKey.length !== SHARD_VALUE_BYTES) {
    throw new ShardError(
      `Root key must be ${SHARD_VALUE_BYTES} bytes, got ${rootKey.length}`,
    );
  }
  if (isAllZero(rootKey)) {
    throw new ShardError("Root key is all zeros");
  }

  const degree = threshold - 1;
  // WebCrypto wants an ArrayBuffer-backed copy; it is zeroed below.
  const ikm = new Uint8Array(rootKey);
  let coefficients: Uint8Array | undefined;
  try {
    // coefficients[(k - 1) * 32 + b] is the x^k coefficient for key byte b;
    // the x^0 coefficient is the key byte itself.
    coefficients = degree === 0 ? new Uint8Array(0) : await hkdf(
      ikm,
      new Uint8Array(0),
      coefficientInfo(threshold),
      SHARD_VALUE_BYTES * degree,
    );
    const result: Shard[] = [];
    for (let x = 1; x <= shares; x++) {
      const value = new Uint8Array(SHARD_VALUE_BYTES);
      for (let b = 0; b < SHARD_VALUE_BYTES; b++) {
        // Horner's rule from the highest coefficient down to the key byte.
        let acc = 0;
        for (let k = degree; k >= 1; k--) {
          acc = gfMul(acc, x) ^ coefficients[(k - 1) * SHARD_VALUE_BYTES + b]!;
        }
        value[b] = gfMul(acc, x) ^ ikm[b]!;
      }
      result.push({ index: x, value });
    }
    return result;
  } finally {
    zero(ikm, coefficients);
  }
}
