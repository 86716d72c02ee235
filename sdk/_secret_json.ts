// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * JSON for secret values without JS strings: the get answer is read with
 * string values as UTF-8 bytes, and the put request is written from bytes.
 * Keys, paths and codes are not secret and stay strings.
 *
 * @module
 */

/** Raised for bytes that are not the JSON nexus sends. */
export class SecretJsonError extends Error {
  /** Creates the error; the message gives a position, never content. */
  constructor(message: string) {
    super(message);
    this.name = "SecretJsonError";
  }
}

/** A JSON value whose strings are UTF-8 bytes. */
export type ByteJson =
  | null
  | boolean
  | number
  | Uint8Array
  | ByteJson[]
  | { [key: string]: ByteJson };

const MAX_DEPTH = 32;
const keyDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// The one-character escapes of JSON strings: escape byte -> value byte.
const ESCAPES: Readonly<Record<number, number>> = {
  0x22: 0x22,
  0x5c: 0x5c,
  0x2f: 0x2f,
  0x62: 0x08,
  0x66: 0x0c,
  0x6e: 0x0a,
  0x72: 0x0d,
  0x74: 0x09,
};

function utf8Into(put: (b: number) => void, codePoint: number): void {
  if (codePoint < 0x80) {
    put(codePoint);
  } else if (codePoint < 0x800) {
    put(0xc0 | (codePoint >> 6));
    put(0x80 | (codePoint & 0x3f));
  } else if (codePoint < 0x10000) {
    put(0xe0 | (codePoint >> 12));
    put(0x80 | ((codePoint >> 6) & 0x3f));
    put(0x80 | (codePoint & 0x3f));
  } else {
    put(0xf0 | (codePoint >> 18));
    put(0x80 | ((codePoint >> 12) & 0x3f));
    put(0x80 | ((codePoint >> 6) & 0x3f));
    put(0x80 | (codePoint & 0x3f));
  }
}

/**
 * Parses JSON whose string values come back as UTF-8 bytes (object keys as
 * strings). The caller owns, and zeroes, every returned byte array.
 *
 * @param bytes UTF-8 JSON
 * @returns the value
 * @throws {SecretJsonError} for invalid JSON or a duplicate key
 */
export function parseByteJson(bytes: Uint8Array): ByteJson {
  let pos = 0;
  const fail = (what: string): never => {
    throw new SecretJsonError(`Invalid JSON at byte ${pos}: ${what}`);
  };
  const ws = () => {
    while (
      bytes[pos] === 0x20 || bytes[pos] === 0x0a || bytes[pos] === 0x0d ||
      bytes[pos] === 0x09
    ) pos++;
  };
  const hex4 = (): number => {
    let n = 0;
    for (let i = 0; i < 4; i++) {
      const c = bytes[pos++];
      if (c === undefined) return fail("unterminated escape");
      const d = c >= 0x30 && c <= 0x39
        ? c - 0x30
        : c >= 0x61 && c <= 0x66
        ? c - 0x57
        : c >= 0x41 && c <= 0x46
        ? c - 0x37
        : -1;
      if (d < 0) fail("invalid escape");
      n = n * 16 + d;
    }
    return n;
  };
  const string = (): Uint8Array => {
    pos++;
    const start = pos;
    // Fast path: no escape, so the bytes between the quotes are the value.
    while (pos < bytes.length) {
      const c = bytes[pos]!;
      if (c === 0x22) {
        const value = bytes.slice(start, pos);
        pos++;
        return value;
      }
      if (c === 0x5c) break;
      if (c < 0x20) fail("control character in string");
      pos++;
    }
    if (pos >= bytes.length) fail("unterminated string");
    const out = new Uint8Array(bytes.length - start);
    out.set(bytes.subarray(start, pos));
    let length = pos - start;
    const put = (b: number) => {
      out[length++] = b;
    };
    try {
      for (;;) {
        const c = bytes[pos];
        if (c === undefined) fail("unterminated string");
        if (c === 0x22) break;
        if (c! < 0x20) fail("control character in string");
        if (c !== 0x5c) {
          put(c!);
          pos++;
          continue;
        }
        pos++;
        const e = bytes[pos++];
        const simple = e === undefined ? undefined : ESCAPES[e];
        if (simple !== undefined) {
          put(simple);
        } else if (e === 0x75) {
          let cp = hex4();
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (bytes[pos] !== 0x5c || bytes[pos + 1] !== 0x75) {
              fail("lone surrogate");
            }
            pos += 2;
            const low = hex4();
            if (low < 0xdc00 || low > 0xdfff) fail("lone surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            fail("lone surrogate");
          }
          utf8Into(put, cp);
        } else {
          fail("invalid escape");
        }
      }
      pos++;
      return out.slice(0, length);
    } finally {
      out.fill(0);
    }
  };
  const key = (): string => {
    const raw = string();
    try {
      return keyDecoder.decode(raw);
    } catch {
      return fail("invalid UTF-8 in a key");
    } finally {
      raw.fill(0);
    }
  };
  const number = (): number => {
    const start = pos;
    if (bytes[pos] === 0x2d) pos++;
    while (
      pos < bytes.length &&
      ((bytes[pos]! >= 0x30 && bytes[pos]! <= 0x39) || bytes[pos] === 0x2e ||
        bytes[pos] === 0x65 || bytes[pos] === 0x45 || bytes[pos] === 0x2b ||
        bytes[pos] === 0x2d)
    ) pos++;
    let text = "";
    for (let i = start; i < pos; i++) text += String.fromCharCode(bytes[i]!);
    const n = Number(text);
    if (text === "" || !Number.isFinite(n)) fail("invalid number");
    return n;
  };
  const literal = (text: string, value: ByteJson): ByteJson => {
    for (let i = 0; i < text.length; i++) {
      if (bytes[pos + i] !== text.charCodeAt(i)) fail("unexpected token");
    }
    pos += text.length;
    return value;
  };
  const value = (depth: number): ByteJson => {
    ws();
    const c = bytes[pos];
    if ((c === 0x7b || c === 0x5b) && depth >= MAX_DEPTH) {
      fail("nesting too deep");
    }
    if (c === 0x7b) {
      pos++;
      const obj: { [key: string]: ByteJson } = {};
      ws();
      if (bytes[pos] === 0x7d) {
        pos++;
        return obj;
      }
      for (;;) {
        ws();
        if (bytes[pos] !== 0x22) fail("object key expected");
        const k = key();
        if (Object.hasOwn(obj, k)) fail("duplicate object key");
        ws();
        if (bytes[pos] !== 0x3a) fail("colon expected");
        pos++;
        Object.defineProperty(obj, k, {
          value: value(depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
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
      const arr: ByteJson[] = [];
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
 * Zeroes every byte string in a parsed value.
 *
 * @param value what {@linkcode parseByteJson} returned
 */
export function wipeByteJson(value: ByteJson | undefined): void {
  if (value instanceof Uint8Array) {
    value.fill(0);
  } else if (Array.isArray(value)) {
    value.forEach(wipeByteJson);
  } else if (value !== null && typeof value === "object") {
    Object.values(value).forEach(wipeByteJson);
  }
}

/**
 * Whether bytes are well-formed UTF-8 (no overlongs, no surrogates, at
 * most U+10FFFF), checked without decoding them into a string.
 *
 * @param bytes the bytes
 * @returns true when well-formed
 */
export function isUtf8(bytes: Uint8Array): boolean {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let cp: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min, cp] = [1, 0x80, b & 0x1f];
    else if (b >= 0xe0 && b <= 0xef) [need, min, cp] = [2, 0x800, b & 0x0f];
    else if (b >= 0xf0 && b <= 0xf4) [need, min, cp] = [3, 0x10000, b & 0x07];
    else return false;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += need + 1;
  }
  return true;
}

/** Builds a JSON request body as bytes. */
export class ByteJsonWriter {
  #buf = new Uint8Array(256);
  #len = 0;

  #ensure(extra: number): void {
    if (this.#len + extra <= this.#buf.length) return;
    const next = new Uint8Array(
      Math.max(this.#buf.length * 2, this.#len + extra),
    );
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf.fill(0);
    this.#buf = next;
  }

  #push(byte: number): void {
    this.#ensure(1);
    this.#buf[this.#len++] = byte;
  }

  /**
   * Appends JSON text that holds no secret (structure, keys, paths).
   *
   * @param text the text
   * @returns this writer
   */
  raw(text: string): this {
    const bytes = new TextEncoder().encode(text);
    this.#ensure(bytes.length);
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
    return this;
  }

  /**
   * Appends well-formed UTF-8 bytes as a JSON string.
   *
   * @param bytes the value; checked with {@linkcode isUtf8} by the caller
   * @returns this writer
   */
  string(bytes: Uint8Array): this {
    this.#push(0x22);
    for (const b of bytes) {
      if (b === 0x22 || b === 0x5c) {
        this.#push(0x5c);
        this.#push(b);
      } else if (b < 0x20) {
        const hex = "0123456789abcdef";
        for (const c of "\\u00") this.#push(c.charCodeAt(0));
        this.#push(hex.charCodeAt(b >> 4));
        this.#push(hex.charCodeAt(b & 0x0f));
      } else {
        this.#push(b);
      }
    }
    this.#push(0x22);
    return this;
  }

  /**
   * Returns the written bytes and zeroes the writer's buffer.
   *
   * @returns a fresh array the caller zeroes after use
   */
  finish(): Uint8Array {
    const out = this.#buf.slice(0, this.#len);
    this.#buf.fill(0);
    this.#len = 0;
    return out;
  }
}
