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

/** What a key press did to a {@linkcode HiddenLine}. */
export type HiddenLineState = "more" | "done" | "cancel" | "overflow";

/**
 * A line typed or pasted without echo: Enter ends it, Backspace removes a
 * byte, Ctrl-U clears it, Ctrl-C cancels; other control bytes are ignored.
 */
export class HiddenLine {
  readonly #buf: Uint8Array;
  #len = 0;

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
      if (byte === 0x0d || byte === 0x0a || byte === 0x04) return "done";
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
 * Parses shard text into a shard.
 *
 * @param input the text bytes (not modified)
 * @returns the shard; the caller zeroes its value
 * @throws {CliError} (exit code 2) saying what is wrong, never echoing input
 */
export function parseShardInput(input: Uint8Array): Shard {
  try {
    return parseRecoveryText(input);
  } catch (e) {
    if (e instanceof ShardError) {
      throw usageError(`Invalid recovery shard: ${lowerFirst(e.message)}`);
    }
    throw e;
  }
}
