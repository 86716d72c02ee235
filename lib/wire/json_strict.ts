// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The strict JSON rules of {@linkcode parseJsonBytes} at the speed of
 * `JSON.parse`, for bodies that carry no shard, key or secret value (the
 * whole body becomes one JS string here). On a large body the byte reader
 * walks every byte in JavaScript; this reads it with the runtime's UTF-8
 * decoder and `JSON.parse`, then checks what `JSON.parse` lets through:
 * duplicate object keys and nesting deeper than 32 levels.
 *
 * Whatever it refuses, it hands to the byte reader, so the error (and its
 * byte position, never content) is the byte reader's own.
 *
 * @module
 */
import { type JsonValue, parseJsonBytes } from "./json_bytes.ts";

const MAX_DEPTH = 32;
// ignoreBOM, as the byte reader: a leading U+FEFF stays and is refused.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Object keys in `value`, all levels; -1 past {@linkcode MAX_DEPTH}
 * levels of arrays and objects.
 */
function keysIn(value: unknown, depth: number): number {
  if (value === null || typeof value !== "object") return 0;
  if (depth >= MAX_DEPTH) return -1;
  let keys = 0;
  const items = Array.isArray(value) ? value : Object.values(value);
  if (!Array.isArray(value)) keys += items.length;
  for (const item of items) {
    const inner = keysIn(item, depth + 1);
    if (inner < 0) return -1;
    keys += inner;
  }
  return keys;
}

/** Whether the quote at `at` is escaped: an odd run of backslashes before it. */
function escapedQuote(text: string, at: number): boolean {
  let i = at - 1;
  while (text.charCodeAt(i) === 0x5c) i--;
  return (at - 1 - i) % 2 === 1;
}

/**
 * The key tokens of valid JSON text: every `:` outside strings follows
 * exactly one key. Skips strings with native searches, so a long string
 * costs one scan. -1 for an unterminated string (not valid JSON).
 */
function keyTokens(text: string): number {
  let count = 0;
  let pos = 0;
  let colon = text.indexOf(":");
  while (colon !== -1) {
    const open = text.indexOf('"', pos);
    if (open === -1 || colon < open) {
      count++;
      colon = text.indexOf(":", colon + 1);
      continue;
    }
    let close = open;
    do {
      close = text.indexOf('"', close + 1);
      if (close === -1) return -1;
    } while (escapedQuote(text, close));
    pos = close + 1;
    if (colon < pos) colon = text.indexOf(":", pos);
  }
  return count;
}

/**
 * Parses JSON from bytes under the rules of {@linkcode parseJsonBytes}
 * (without `plainIntegers`): strict UTF-8, no duplicate object key, at
 * most 32 levels of nesting. Not for bodies carrying shards, keys or secret
 * values: the body becomes a JS string.
 *
 * @param bytes UTF-8 JSON
 * @returns the value, as `parseJsonBytes` reads it
 * @throws {JsonBytesError} with the byte reader's message for anything it
 *   refuses
 */
export function parseJsonStrict(bytes: Uint8Array): JsonValue {
  let text: string;
  let value: JsonValue;
  try {
    text = decoder.decode(bytes);
    value = JSON.parse(text);
  } catch {
    return parseJsonBytes(bytes);
  }
  const keys = keysIn(value, 0);
  // JSON.parse keeps the last of duplicate keys: fewer keys than tokens.
  if (keys < 0 || keys !== keyTokens(text)) return parseJsonBytes(bytes);
  return value;
}
