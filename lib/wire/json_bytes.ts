// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A strict JSON reader and a shard writer that work on bytes. Shard-bearing
 * bodies (keeper contribute/shard, operator recover/restore) go through
 * these, so share bytes never become a JS string: digits are read straight
 * into numbers and written straight from bytes.
 *
 * @module
 */

/** Raised for a body that is not valid JSON. */
export class JsonBytesError extends Error {
  /** Creates the error; the message gives a position, never content. */
  constructor(message: string) {
    super(message);
    this.name = "JsonBytesError";
  }
}

/** A JSON value as read by {@linkcode parseJsonBytes}. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** Settings of {@linkcode parseJsonBytes}. */
export interface ParseJsonBytesOptions {
  /**
   * Refuse every number that is not a plain integer of at most 15
   * characters (no fraction, no exponent). Such numbers are read digit by
   * digit; any other number is converted through a JS string, which a
   * shard-bearing body must never cause.
   */
  plainIntegers?: boolean;
}

const MAX_DEPTH = 32;
const MAX_PLAIN_INTEGER_CHARS = 15;
// ignoreBOM: a string value may itself start with U+FEFF, which the
// decoder would otherwise drop (JSON.parse keeps it).
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Parses JSON from bytes. Nesting is capped at 32 levels of arrays and
 * objects.
 *
 * @param bytes UTF-8 JSON
 * @param options what else to refuse
 * @returns the value
 * @throws {JsonBytesError} for invalid JSON, invalid UTF-8, deep nesting,
 * a duplicate object key, or (with `plainIntegers`) a number that is not a
 * plain integer
 */
export function parseJsonBytes(
  bytes: Uint8Array,
  options: ParseJsonBytesOptions = {},
): JsonValue {
  const plainIntegers = options.plainIntegers ?? false;
  let pos = 0;
  const fail = (what: string): never => {
    throw new JsonBytesError(`Invalid JSON at byte ${pos}: ${what}`);
  };
  const ws = () => {
    while (pos < bytes.length) {
      const c = bytes[pos]!;
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      pos++;
    }
  };
  const literal = (text: string, value: JsonValue): JsonValue => {
    for (let i = 0; i < text.length; i++) {
      if (bytes[pos + i] !== text.charCodeAt(i)) fail("unexpected token");
    }
    pos += text.length;
    return value;
  };
  const number = (): number => {
    const start = pos;
    if (bytes[pos] === 0x2d) pos++;
    const digits = () => {
      const s = pos;
      while (pos < bytes.length && bytes[pos]! >= 0x30 && bytes[pos]! <= 0x39) {
        pos++;
      }
      if (pos === s) fail("digit expected");
    };
    if (bytes[pos] === 0x30) pos++;
    else digits();
    let integer = true;
    if (bytes[pos] === 0x2e) {
      integer = false;
      pos++;
      digits();
    }
    if (bytes[pos] === 0x65 || bytes[pos] === 0x45) {
      integer = false;
      pos++;
      if (bytes[pos] === 0x2b || bytes[pos] === 0x2d) pos++;
      digits();
    }
    if (plainIntegers && !integer) fail("number must be a plain integer");
    if (plainIntegers && pos - start > MAX_PLAIN_INTEGER_CHARS) {
      fail("integer is too long");
    }
    if (integer && pos - start <= MAX_PLAIN_INTEGER_CHARS) {
      // Small integers (every shard byte) are summed digit by digit, so
      // share values never pass through a string.
      let n = 0;
      const negative = bytes[start] === 0x2d;
      for (let i = negative ? start + 1 : start; i < pos; i++) {
        n = n * 10 + bytes[i]! - 0x30;
      }
      return negative ? -n : n;
    }
    let text = "";
    for (let i = start; i < pos; i++) text += String.fromCharCode(bytes[i]!);
    return Number(text);
  };
  const string = (): string => {
    pos++;
    const start = pos;
    const end = bytes.length;
    let escaped = false;
    while (pos < end) {
      const c = bytes[pos]!;
      // One test for the bytes that need nothing (a long value is all
      // of them); quote, backslash and control characters fall through.
      if (c > 0x22 && c !== 0x5c) {
        pos++;
        continue;
      }
      if (c === 0x22) break;
      if (c < 0x20) fail("control character in string");
      if (c === 0x5c) {
        escaped = true;
        pos++;
      }
      pos++;
    }
    if (pos >= end) fail("unterminated string");
    const raw = bytes.subarray(start, pos);
    pos++;
    let text: string;
    try {
      text = decoder.decode(raw);
    } catch {
      return fail("invalid UTF-8");
    }
    if (!escaped) return text;
    try {
      return JSON.parse(`"${text}"`) as string;
    } catch {
      return fail("invalid escape");
    }
  };
  const value = (depth: number): JsonValue => {
    ws();
    const c = bytes[pos];
    if ((c === 0x7b || c === 0x5b) && depth >= MAX_DEPTH) {
      fail("nesting too deep");
    }
    if (c === 0x7b) {
      pos++;
      const obj: { [key: string]: JsonValue } = {};
      ws();
      if (bytes[pos] === 0x7d) {
        pos++;
        return obj;
      }
      for (;;) {
        ws();
        if (bytes[pos] !== 0x22) fail("object key expected");
        const key = string();
        // Parsers disagree on which duplicate wins; a check in front of
        // nexus could see one path while nexus acts on another.
        if (Object.hasOwn(obj, key)) fail("duplicate object key");
        ws();
        if (bytes[pos] !== 0x3a) fail("colon expected");
        pos++;
        if (key === "__proto__") {
          // An own property, as JSON.parse makes it, not the prototype.
          Object.defineProperty(obj, key, {
            value: value(depth + 1),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        } else {
          obj[key] = value(depth + 1);
        }
        ws();
        if (bytes[pos] === 0x2c) {
          pos++;
          continue;
        }
        if (bytes[pos] === 0x7d) {
          pos++;
          return obj;
        }
        fail("comma or } expected");
      }
    }
    if (c === 0x5b) {
      pos++;
      const arr: JsonValue[] = [];
      ws();
      if (bytes[pos] === 0x5d) {
        pos++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (bytes[pos] === 0x2c) {
          pos++;
          continue;
        }
        if (bytes[pos] === 0x5d) {
          pos++;
          return arr;
        }
        fail("comma or ] expected");
      }
    }
    if (c === 0x22) return string();
    if (c === 0x74) return literal("true", true);
    if (c === 0x66) return literal("false", false);
    if (c === 0x6e) return literal("null", null);
    if (c === 0x2d || (c !== undefined && c >= 0x30 && c <= 0x39)) {
      return number();
    }
    return fail(c === undefined ? "unexpected end" : "unexpected token");
  };
  const result = value(0);
  ws();
  if (pos !== bytes.length) fail("trailing data");
  return result;
}

/**
 * Reads a 32-byte shard from a JSON array of 32 integers 0..255, then
 * overwrites the array with zeros. Parse the body with
 * `{ plainIntegers: true }`, so that no element was read through a string.
 * Any array is zeroed, also one that is refused.
 *
 * @param value the parsed JSON value
 * @returns the shard bytes, or undefined when the value is not such an array
 */
export function takeShardArray(
  value: JsonValue | undefined,
): Uint8Array | undefined {
  if (!Array.isArray(value)) return undefined;
  if (value.length !== 32) {
    value.fill(0);
    return undefined;
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    const n = value[i];
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 255) {
      out.fill(0);
      value.fill(0);
      return undefined;
    }
    out[i] = n;
  }
  value.fill(0);
  return out;
}

/** Builds JSON output directly as bytes. */
export class JsonBytesWriter {
  #buf = new Uint8Array(256);
  #len = 0;

  #ensure(extra: number) {
    if (this.#len + extra <= this.#buf.length) return;
    const next = new Uint8Array(
      Math.max(this.#buf.length * 2, this.#len + extra),
    );
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf.fill(0);
    this.#buf = next;
  }

  /**
   * Appends ASCII structure (braces, keys, commas) that holds no secret.
   *
   * @param text ASCII text
   * @returns this writer
   */
  raw(text: string): this {
    this.#ensure(text.length);
    for (let i = 0; i < text.length; i++) {
      this.#buf[this.#len++] = text.charCodeAt(i);
    }
    return this;
  }

  /**
   * Appends bytes as a JSON array of integers, without passing through strings.
   *
   * @param bytes the bytes
   * @returns this writer
   */
  byteArray(bytes: Uint8Array): this {
    this.#ensure(bytes.length * 4 + 2);
    this.#buf[this.#len++] = 0x5b;
    bytes.forEach((b, i) => {
      if (i > 0) this.#buf[this.#len++] = 0x2c;
      if (b >= 100) this.#buf[this.#len++] = 0x30 + Math.floor(b / 100);
      if (b >= 10) this.#buf[this.#len++] = 0x30 + Math.floor(b / 10) % 10;
      this.#buf[this.#len++] = 0x30 + b % 10;
    });
    this.#buf[this.#len++] = 0x5d;
    return this;
  }

  /**
   * Returns the written bytes and zeroes the writer's buffer.
   *
   * @returns a fresh array owned by the caller (who zeroes it after use)
   */
  finish(): Uint8Array {
    const out = this.#buf.slice(0, this.#len);
    this.#buf.fill(0);
    this.#len = 0;
    return out;
  }
}
