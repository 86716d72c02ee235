// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The recovery text of a shard, upstream SPIKE's format:
 * `spike:<index>:<64 lowercase hex>` (no trailing newline).
 *
 * Both directions work on bytes, so the hex of a share never lives in an
 * immutable JS string that cannot be zeroed. Hex is encoded and decoded
 * without branches or lookups on the secret nibbles. Error messages never
 * echo any part of the input.
 *
 * @module
 */
import { zero } from "../crypto/zero.ts";
import {
  assertShard,
  MAX_SHARES,
  type Shard,
  SHARD_VALUE_BYTES,
} from "./shard.ts";
import { ShardError } from "./shard_error.ts";

const PREFIX = new TextEncoder().encode("spike:");
const COLON = 0x3a;
const HEX_CHARS = SHARD_VALUE_BYTES * 2;
const FORM = "spike:<index>:<64 lowercase hex characters>";

/**
 * Formats a shard as recovery text.
 *
 * @param shard a valid shard
 * @returns the ASCII bytes `spike:<index>:<hex>`; the caller zeroes them
 * @throws {ShardError} when the shard is invalid
 */
export function formatRecoveryText(shard: Shard): Uint8Array<ArrayBuffer> {
  assertShard(shard);
  const digits = new TextEncoder().encode(String(shard.index));
  const out = new Uint8Array(PREFIX.length + digits.length + 1 + HEX_CHARS);
  out.set(PREFIX);
  out.set(digits, PREFIX.length);
  let at = PREFIX.length + digits.length;
  out[at++] = COLON;
  for (const byte of shard.value) {
    out[at++] = hexChar(byte >> 4);
    out[at++] = hexChar(byte & 0x0f);
  }
  return out;
}

/**
 * Parses recovery text strictly: only surrounding whitespace is trimmed;
 * the prefix is exactly `spike:`; the index is decimal 1..255 without sign,
 * leading zeros or spaces; the share is exactly 64 lowercase hex characters.
 *
 * @param text the recovery text, as bytes (not modified) or a string
 * @returns the shard; the caller zeroes its value
 * @throws {ShardError} naming what is wrong, never quoting the input
 */
export function parseRecoveryText(text: Uint8Array | string): Shard {
  if (typeof text !== "string") return parseBytes(text);
  const bytes = new TextEncoder().encode(text);
  try {
    return parseBytes(bytes);
  } finally {
    zero(bytes);
  }
}

function parseBytes(input: Uint8Array): Shard {
  const text = trimWhitespace(input);
  if (text.length === 0) throw new ShardError("Recovery text is empty");
  if (!startsWith(text, PREFIX)) {
    throw new ShardError(`Recovery text must start with "spike:" (${FORM})`);
  }
  const rest = text.subarray(PREFIX.length);
  const colon = rest.indexOf(COLON);
  if (colon < 0) {
    throw new ShardError(`Recovery text is missing parts (${FORM})`);
  }
  const index = parseIndex(rest.subarray(0, colon));
  const hex = rest.subarray(colon + 1);
  if (hex.includes(COLON)) {
    throw new ShardError(`Recovery text has too many parts (${FORM})`);
  }
  if (hex.length !== HEX_CHARS) {
    throw new ShardError(
      `Recovery text shard must be ${HEX_CHARS} hex characters, got ${hex.length}`,
    );
  }
  return { index, value: decodeHex(hex) };
}

function parseIndex(digits: Uint8Array): number {
  if (digits.length === 0) {
    throw new ShardError("Recovery text shard index is missing");
  }
  let value = 0;
  for (const c of digits) {
    if (c < 0x30 || c > 0x39) {
      throw new ShardError(
        "Recovery text shard index must be a decimal number without sign or spaces",
      );
    }
    value = value * 10 + (c - 0x30);
  }
  if (digits.length > 1 && digits[0] === 0x30) {
    throw new ShardError(
      "Recovery text shard index must not have leading zeros",
    );
  }
  if (value < 1 || value > MAX_SHARES || digits.length > 3) {
    throw new ShardError(
      `Recovery text shard index must be from 1 to ${MAX_SHARES}`,
    );
  }
  return value;
}

function decodeHex(hex: Uint8Array): Uint8Array<ArrayBuffer> {
  const value = new Uint8Array(SHARD_VALUE_BYTES);
  let bad = 0;
  for (let i = 0; i < SHARD_VALUE_BYTES; i++) {
    const hi = hexValue(hex[2 * i]!);
    const lo = hexValue(hex[2 * i + 1]!);
    bad |= (hi | lo) & 0x100;
    value[i] = ((hi << 4) | lo) & 0xff;
  }
  if (bad === 0) return value;
  zero(value);
  // The input is rejected; a data-dependent scan only picks the message.
  const isUpper = (c: number) => c >= 0x41 && c <= 0x46;
  const isHex = (c: number) => (hexValue(c) & 0x100) === 0 || isUpper(c);
  if (hex.every(isHex)) {
    throw new ShardError("Recovery text shard hex must be lowercase");
  }
  throw new ShardError("Recovery text shard contains a non-hex character");
}

/** The lowercase hex digit for a nibble (0..15), branch-free. */
function hexChar(nibble: number): number {
  // 48 is "0"; nibbles ≥ 10 add 39 more to land on "a" (97).
  return 48 + nibble + (((9 - nibble) >> 8) & 39);
}

/**
 * The nibble for a lowercase hex character, branch-free; 0x100 is set in
 * the result for any other byte.
 */
function hexValue(c: number): number {
  const isDigit = ((47 - c) & (c - 58)) >> 31;
  const isLower = ((96 - c) & (c - 103)) >> 31;
  return (isDigit & (c - 48)) | (isLower & (c - 87)) |
    (~(isDigit | isLower) & 0x100);
}

function isWhitespace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

function trimWhitespace(bytes: Uint8Array): Uint8Array {
  let start = 0;
  let end = bytes.length;
  while (start < end && isWhitespace(bytes[start]!)) start++;
  while (end > start && isWhitespace(bytes[end - 1]!)) end--;
  return bytes.subarray(start, end);
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (bytes[i] !== prefix[i]) return false;
  }
  return true;
}
