// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Arithmetic in GF(2^8) with the AES polynomial x⁸ + x⁴ + x³ + x + 1
 * (0x11b), the field of the `shamir-secret-sharing` package, so that its
 * `combine` interpolates our shares.
 *
 * @module
 */

/**
 * Multiplies two field elements without branches or table lookups that
 * depend on the operands, so secret coefficients do not steer timing.
 *
 * @param a a field element, 0..255
 * @param b a field element, 0..255
 * @returns a·b in GF(2^8)
 */
export function gfMul(a: number, b: number): number {
  let product = 0;
  for (let i = 0; i < 8; i++) {
    product ^= -(b & 1) & a;
    // Reduce by 0x11b when the shift carries out of the byte.
    a = ((a << 1) & 0xff) ^ (-(a >> 7) & 0x1b);
    b >>= 1;
  }
  return product;
}
