// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Zeroing of key material held in byte arrays.
 *
 * @module
 */

// The typed array's own fill: a node Buffer's fill (the HTTP layer's
// chunks) is a JavaScript polyfill in Deno, ~15x slower on 16 KiB.
const fill = Uint8Array.prototype.fill;

/**
 * Overwrites every given buffer with zeros. Safe on `undefined`.
 *
 * @param buffers the buffers to clear
 */
export function zero(...buffers: (Uint8Array | undefined)[]): void {
  for (const b of buffers) if (b !== undefined) fill.call(b, 0);
}

/**
 * Whether every byte of `bytes` is zero (an empty key or shard slot).
 *
 * @param bytes the bytes to inspect
 * @returns true when all bytes are zero
 */
export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (const b of bytes) acc |= b;
  return acc === 0;
}

/**
 * Compares two byte arrays in time independent of where they differ.
 *
 * @param a first array
 * @param b second array
 * @returns true when both have the same length and bytes
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]! ^ b[i]!;
  return acc === 0;
}
