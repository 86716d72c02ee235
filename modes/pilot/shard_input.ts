// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Reading a recovery shard for `operator restore`: hidden typing or paste
 * on a terminal (raw mode, nothing echoed), or up to 4096 bytes from a pipe.
 * Input stays in one fixed buffer that is zeroed after use.
 *
 * @module
 */
import { zero } from "../../lib/crypto/zero.ts";
import {
  parseRecoveryText,
  type Shard,
  ShardError,
} from "../../lib/shard/mod.ts";
import { CliError, lowerFirst, usageError } from "./cli_error.ts";
import { writeStderr } from "./output.ts";

/** The most bytes of shard input read (upstream's limit). */
export const MAX_SHARD_INPUT = 4096;

const COLON = 0x3a;
const PREFIX = "spike:";
const HEX_CHARS = 64;

/** 1 when `lo <= c <= hi`, else 0, without a branch on `c`. */
function inRange(c: number, lo: number, hi: number): number {
  return (((c - lo) | (hi - c)) >>> 31) ^ 1;
}

/** 1 for a space, tab, line feed, vertical tab, form feed or carriage return. */
function isBlank(c: number): number {
  return inRange(c, 0x20, 0x20) | inRange(c, 0x09, 0x0d);
}

/** Where the share's hex starts (after `spike:<index>:`), or -1. */
function hexStart(bytes: Uint8Array): number {
  let start = 0;
  while (start < bytes.length && isBlank(bytes[start]!)) start++;
  for (let i = 0; i < PREFIX.length; i++) {
    if (((bytes[start + i] ?? 0) | 0x20) !== PREFIX.charCodeAt(i)) return -1;
  }
  const colon = bytes.indexOf(COLON, start + PREFIX.length);
  return colon < 0 ? -1 : colon + 1;
}

/**
 * Normalizes pasted shard text: a `spike:` prefix in any case, and a share
 * wrapped over lines or written in uppercase hex, become the canonical form
 * `spike:<index>:<64 lowercase hex>`. Only the hex part loses its blanks and
 * gets lowercased, so nothing can turn into a different shard: blanks in the
 * index, or any other character, stay and are refused by the parser. Runs
 * without branches on the share's bytes.
 *
 * @param input the text as read (not modified)
 * @returns the normalized text in a new buffer; the caller zeroes it
 */
export function normalizeShardText(input: Uint8Array): Uint8Array {
  const out = new Uint8Array(input.length);
  const hex = hexStart(input);
  if (hex < 0) {
    out.set(input);
    return out;
  }
  let start = 0;
  while (isBlank(input[start]!)) start++;
  out.set(new TextEncoder().encode(PREFIX));
  out.set(input.subarray(start + PREFIX.length, hex), PREFIX.length);
  let len = hex - start;
  for (let i = hex; i < input.length; i++) {
    const c = input[i]!;
    // Uppercase A-F gain the lowercase bit; blanks are overwritten next.
    out[len] = c | (inRange(c, 0x41, 0x46) << 5);
    len += 1 - isBlank(c);
  }
  const result = out.slice(0, len);
  zero(out);
  return result;
}

/**
 * Tells whether text holds the start of a shard whose hex is not complete:
 * `spike:<index>:` and fewer than 64 hex characters, ignoring blanks. A
 * terminal paste of a shard wrapped over two lines then goes on reading
 * after the first line break.
 *
 * @param bytes the text so far
 * @returns true when more hex is expected
 */
export function shardTextIncomplete(bytes: Uint8Array): boolean {
  const hex = hexStart(bytes);
  if (hex < 0) return false;
  let count = 0;
  for (let i = hex; i < bytes.length; i++) count += 1 - isBlank(bytes[i]!);
  return count < HEX_CHARS;
}

/** What a key press did to a {@linkcode HiddenLine}. */
export type HiddenLineState = "more" | "done" | "cancel" | "overflow";

/**
 * A line typed or pasted without echo: Enter ends it, Backspace removes a
 * byte, Ctrl-U clears it, Ctrl-C cancels; other control bytes are ignored.
 * Enter after an incomplete shard (a paste wrapped over two lines) goes on
 * reading; a second Enter in a row ends the line anyway.
 */
export class HiddenLine {
  readonly #buf: Uint8Array;
  #len = 0;
  #afterEnter = false;
  #previous = 0;

  /** @param capacity the most bytes the line may hold */
  constructor(capacity = MAX_SHARD_INPUT) {
    this.#buf = new Uint8Array(capacity);
  }

  /**
   * Takes bytes read from a raw-mode terminal.
   *
   * @param chunk the bytes
   * @returns whether the line goes on, is complete, was cancelled, or overflowed
   */
  feed(chunk: Uint8Array): HiddenLineState {
    for (const byte of chunk) {
      const previous = this.#previous;
      this.#previous = byte;
      // CR LF is one Enter.
      if (byte === 0x0a && previous === 0x0d) continue;
      if (byte === 0x0d || byte === 0x0a) {
        if (this.#afterEnter || !shardTextIncomplete(this.bytes())) {
          return "done";
        }
        this.#afterEnter = true;
        continue;
      }
      this.#afterEnter = false;
      if (byte === 0x04) return "done";
      if (byte === 0x03) return "cancel";
      if (byte === 0x7f || byte === 0x08) {
        if (this.#len > 0) this.#buf[--this.#len] = 0;
      } else if (byte === 0x15) {
        this.#buf.fill(0, 0, this.#len);
        this.#len = 0;
      } else if (byte >= 0x20) {
        if (this.#len === this.#buf.length) return "overflow";
        this.#buf[this.#len++] = byte;
      }
    }
    return "more";
  }

  /** The bytes so far (a view; cleared by {@linkcode clear}). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }

  /** Zeroes the buffer. */
  clear(): void {
    this.#buf.fill(0);
    this.#len = 0;
    this.#previous = 0;
  }
}

/** The part of a reader pilot needs (Deno.stdin, a file, a test double). */
export interface ByteReader {
  /** Reads into `p`; `null` at end of input. */
  read(p: Uint8Array): Promise<number | null>;
}

/**
 * Reads all of a pipe, refusing more than `max` bytes.
 *
 * @param reader the input
 * @param max the most bytes accepted
 * @returns the bytes (in a buffer the caller zeroes)
 * @throws {CliError} (exit code 2) when the input is longer than `max`
 */
export async function readPipedInput(
  reader: ByteReader,
  max = MAX_SHARD_INPUT,
): Promise<Uint8Array> {
  const buf = new Uint8Array(max + 1);
  let len = 0;
  for (;;) {
    if (len === buf.length) {
      zero(buf);
      throw usageError(
        `The shard input is longer than ${max} bytes; give one line like spike:<index>:<64 hex>`,
      );
    }
    const n = await reader.read(buf.subarray(len));
    if (n === null) break;
    len += n;
  }
  return buf.subarray(0, len);
}

/**
 * Reads one line typed or pasted on the terminal without echo (raw mode).
 *
 * @param prompt what to print on stderr first
 * @param capacity the most bytes the line may hold
 * @param messages the sentences for Ctrl-C and for a line too long
 * @returns the bytes, without the line break; the caller zeroes them
 * @throws {CliError} when cancelled (exit 1) or too long (exit 2)
 */
export async function readHiddenInput(
  prompt: string,
  capacity: number,
  messages: { cancelled: string; tooLong: string },
): Promise<Uint8Array> {
  await writeStderr(prompt);
  const line = new HiddenLine(capacity);
  const chunk = new Uint8Array(512);
  let state: HiddenLineState = "more";
  Deno.stdin.setRaw(true);
  try {
    while (state === "more") {
      const n = await Deno.stdin.read(chunk);
      if (n === null) {
        state = "done";
        break;
      }
      state = line.feed(chunk.subarray(0, n));
    }
  } finally {
    Deno.stdin.setRaw(false);
    zero(chunk);
    await writeStderr("\n");
  }
  if (state !== "done") {
    line.clear();
    throw state === "cancel"
      ? new CliError(messages.cancelled)
      : usageError(messages.tooLong);
  }
  const bytes = line.bytes().slice();
  line.clear();
  return bytes;
}

function readHiddenLine(): Promise<Uint8Array> {
  return readHiddenInput(
    "(your input will be hidden as you paste/type it)\nEnter recovery shard: ",
    MAX_SHARD_INPUT,
    {
      cancelled: "Cancelled: no shard was sent",
      tooLong:
        `The shard input is longer than ${MAX_SHARD_INPUT} bytes; give one line like spike:<index>:<64 hex>`,
    },
  );
}

/**
 * Reads the shard text: hidden from a terminal, else from the pipe.
 *
 * @returns the bytes; the caller zeroes them
 */
export async function readShardInput(): Promise<Uint8Array> {
  return Deno.stdin.isTerminal()
    ? await readHiddenLine()
    : await readPipedInput(Deno.stdin);
}

/**
 * Parses shard text into a shard, after {@linkcode normalizeShardText}.
 *
 * @param input the text bytes (not modified)
 * @returns the shard; the caller zeroes its value
 * @throws {CliError} (exit code 2) saying what is wrong, never echoing input
 */
export function parseShardInput(input: Uint8Array): Shard {
  const text = normalizeShardText(input);
  try {
    return parseRecoveryText(text);
  } catch (e) {
    if (e instanceof ShardError) {
      throw usageError(`Invalid recovery shard: ${lowerFirst(e.message)}`);
    }
    throw e;
  } finally {
    zero(text);
  }
}
