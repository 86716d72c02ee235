// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Asking the operator: a yes/no confirmation read from the terminal.
 *
 * @module
 */
import { writeStderr } from "./output.ts";

/** The longest answer line read. */
const MAX_ANSWER = 256;

/**
 * Reads one line from stdin (without the line break).
 *
 * @param max the most bytes kept
 * @returns the line, or `undefined` at end of input
 */
export async function readLine(max = MAX_ANSWER): Promise<string | undefined> {
  const chunk = new Uint8Array(64);
  const line: number[] = [];
  for (;;) {
    const n = await Deno.stdin.read(chunk);
    if (n === null) {
      return line.length === 0
        ? undefined
        : new TextDecoder().decode(new Uint8Array(line));
    }
    for (const byte of chunk.subarray(0, n)) {
      if (byte === 0x0a) {
        return new TextDecoder().decode(new Uint8Array(line)).replace(
          /\r$/,
          "",
        );
      }
      if (line.length < max) line.push(byte);
    }
  }
}

/**
 * Asks a yes/no question on stderr and reads the answer from stdin.
 *
 * @param question the question, e.g. `Delete policy "web"?`
 * @returns true only for `y` or `yes` (any case)
 */
export async function confirm(question: string): Promise<boolean> {
  await writeStderr(`${question} (y/N): `);
  const answer = await readLine();
  if (answer === undefined) await writeStderr("\n");
  return /^\s*y(es)?\s*$/i.test(answer ?? "");
}
