// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The audit chain: every audit line nexus writes carries its sequence
 * number and the SHA-256 of the line before it, so a line edited, removed,
 * reordered or cut off is found by `spike pilot audit verify`.
 *
 * Line format (one JSON object per line, in this key order):
 * `{"time": RFC 3339, "audit": {…}, "seq": n, "prev": hex(SHA-256)}`. The
 * hash of a line is SHA-256 of its exact UTF-8 bytes without the line
 * break. The first line of a chain has seq 1 and a prev of 64 zeros.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** The head of a chain: the last line's sequence number and hash. */
export interface AuditHead {
  /** Sequence number of the line, from 1. */
  readonly seq: number;
  /** SHA-256 of the line, 32 bytes. */
  readonly hash: Uint8Array;
}

/** The prev of a chain's first line. */
export const GENESIS_PREV = "0".repeat(64);

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * SHA-256 of a line's bytes.
 *
 * @param line the line, without its line break
 * @returns 32 bytes
 */
export function lineHash(line: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(line).digest());
}

/** What a chained line says about its place in the chain. */
export interface ChainLink {
  /** Its sequence number. */
  readonly seq: number;
  /** The hash it holds of the line before, 64 lowercase hex digits. */
  readonly prev: string;
}

/**
 * Reads the chain fields of one line.
 *
 * @param line the line's bytes, without the line break
 * @returns its link, or undefined for a line that is not a chained audit
 *   line (not JSON, or without a whole number `seq` and a hex `prev`)
 */
export function chainLink(line: Uint8Array): ChainLink | undefined {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(line));
  } catch {
    return undefined;
  }
  const v = value as { seq?: unknown; prev?: unknown; audit?: unknown } | null;
  if (
    typeof v !== "object" || v === null || typeof v.audit !== "object" ||
    typeof v.seq !== "number" || !Number.isSafeInteger(v.seq) || v.seq < 1 ||
    typeof v.prev !== "string" || !/^[0-9a-f]{64}$/.test(v.prev)
  ) {
    return undefined;
  }
  return { seq: v.seq, prev: v.prev };
}

/** Adds lines to a chain. */
export class AuditChain {
  #seq: number;
  #hash: Uint8Array | undefined;

  /**
   * @param head the last line written before, or undefined to start a
   *   chain
   */
  constructor(head?: AuditHead) {
    this.#seq = head?.seq ?? 0;
    this.#hash = head?.hash;
  }

  /** The last line added, or undefined before the first. */
  get head(): AuditHead | undefined {
    return this.#hash && { seq: this.#seq, hash: this.#hash };
  }

  /**
   * Makes the next line of the chain.
   *
   * @param time the line's time
   * @param audit the audit record
   * @returns the line, with its line break
   */
  next(time: string, audit: unknown): string {
    const seq = this.#seq + 1;
    const prev = this.#hash?.toHex() ?? GENESIS_PREV;
    const line = JSON.stringify({ time, audit, seq, prev });
    this.#seq = seq;
    this.#hash = lineHash(line);
    return line + "\n";
  }
}

/** The end of an audit file as found at start. */
export interface AuditTail {
  /** The last whole chained line, when there is one. */
  readonly head?: AuditHead;
  /** Whether the file ends inside a line (cut short). */
  readonly cut: boolean;
}

/** Bytes read from the end of a file to find its last line. */
const TAIL_BYTES = 64 * 1024;

/**
 * Finds the last whole chained line of an audit file.
 *
 * @param path the file
 * @returns the tail; no head for a missing or empty file, or one whose last
 *   64 KiB hold no chained line
 */
export async function readAuditTail(path: string): Promise<AuditTail> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { cut: false };
    throw e;
  }
  try {
    const size = (await file.stat()).size;
    const start = Math.max(0, size - TAIL_BYTES);
    await file.seek(start, Deno.SeekMode.Start);
    const bytes = new Uint8Array(size - start);
    let read = 0;
    while (read < bytes.length) {
      const n = await file.read(bytes.subarray(read));
      if (n === null) break;
      read += n;
    }
    const tail = bytes.subarray(0, read);
    const cut = tail.length > 0 && tail[tail.length - 1] !== 0x0a;
    // Whole lines only: the part before the first break may be cut by the
    // 64 KiB window, the part after the last one by a crash.
    let end = tail.lastIndexOf(0x0a);
    while (end > 0) {
      const begin = tail.lastIndexOf(0x0a, end - 1) + 1;
      if (begin === 0 && start > 0) break;
      const line = tail.subarray(begin, end);
      const link = chainLink(line);
      if (link) {
        return { head: { seq: link.seq, hash: lineHash(line) }, cut };
      }
      end = begin - 1;
    }
    return { cut };
  } finally {
    file.close();
  }
}
