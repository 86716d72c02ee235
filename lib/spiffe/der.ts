// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Byte-level DER and PEM helpers for the Workload API: splitting the
 * concatenated certificates it sends and wrapping a private key as PEM
 * without the key ever becoming a JS string.
 *
 * @module
 */

/** Raised for bytes that are not a sequence of DER-encoded values. */
export class DerError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "DerError";
  }
}

const SEQUENCE_TAG = 0x30;

/**
 * Splits concatenated DER SEQUENCEs (certificates) into one array each,
 * reading each value's ASN.1 length header. The results are copies.
 *
 * @param bytes zero or more DER SEQUENCEs back to back
 * @returns one byte array per SEQUENCE, in order
 * @throws {DerError} when a value is not a definite-length SEQUENCE or runs past the end
 */
export function splitDerSequences(input: Uint8Array): Uint8Array[] {
  // A plain Uint8Array view, so slice() copies even when given a node Buffer.
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.length);
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const start = pos;
    if (bytes[pos] !== SEQUENCE_TAG) {
      throw new DerError(`DER value at byte ${start} is not a SEQUENCE`);
    }
    pos++;
    const first = bytes[pos++];
    if (first === undefined) {
      throw new DerError(`DER value at byte ${start} is truncated`);
    }
    let length = first;
    if (first & 0x80) {
      const count = first & 0x7f;
      // 0x80 is the indefinite form (BER only); more than 4 length bytes
      // would describe a certificate larger than any sane limit.
      if (count === 0 || count > 4) {
        throw new DerError(
          `DER value at byte ${start} has an unsupported length form`,
        );
      }
      length = 0;
      for (let i = 0; i < count; i++) {
        const b = bytes[pos++];
        if (b === undefined) {
          throw new DerError(`DER value at byte ${start} is truncated`);
        }
        length = length * 256 + b;
      }
    }
    if (pos + length > bytes.length) {
      throw new DerError(`DER value at byte ${start} runs past the end`);
    }
    pos += length;
    out.push(bytes.slice(start, pos));
  }
  return out;
}

const BASE64_ALPHABET = new TextEncoder().encode(
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
);
const LINE_CHARS = 64;
const NEWLINE = 0x0a;
const PAD = 0x3d;

/**
 * Wraps DER bytes as PEM (`-----BEGIN <label>-----`, 64-column base64),
 * building the result directly as bytes so key material never becomes a
 * JS string.
 *
 * @param label e.g. `PRIVATE KEY`
 * @param der the DER bytes
 * @returns the PEM text as UTF-8 bytes, ending with a newline
 */
export function pemFromDer(label: string, der: Uint8Array): Uint8Array {
  const encoder = new TextEncoder();
  const header = encoder.encode(`-----BEGIN ${label}-----\n`);
  const footer = encoder.encode(`-----END ${label}-----\n`);
  const chars = Math.ceil(der.length / 3) * 4;
  const lines = Math.ceil(chars / LINE_CHARS);
  const out = new Uint8Array(header.length + chars + lines + footer.length);
  out.set(header, 0);
  let o = header.length;
  let column = 0;
  const put = (c: number) => {
    out[o++] = c;
    if (++column === LINE_CHARS) {
      out[o++] = NEWLINE;
      column = 0;
    }
  };
  for (let i = 0; i < der.length; i += 3) {
    const b0 = der[i]!;
    const b1 = der[i + 1];
    const b2 = der[i + 2];
    put(BASE64_ALPHABET[b0 >> 2]!);
    put(BASE64_ALPHABET[((b0 & 0x03) << 4) | ((b1 ?? 0) >> 4)]!);
    put(
      b1 === undefined
        ? PAD
        : BASE64_ALPHABET[((b1 & 0x0f) << 2) | ((b2 ?? 0) >> 6)]!,
    );
    put(b2 === undefined ? PAD : BASE64_ALPHABET[b2 & 0x3f]!);
  }
  if (column !== 0) out[o++] = NEWLINE;
  out.set(footer, o);
  return out;
}
