// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A note on a terminal when a wait lasts: what is being waited for, and how
 * long at most, so a silent pause of up to a minute does not look like a
 * hang. Only on a terminal, so scripts and logs see nothing extra.
 *
 * @module
 */
import process from "node:process";

/** How long a wait may last before the note appears. */
export const WAIT_NOTE_DELAY_MS = 1500;

/**
 * Awaits `work`; if it is still pending after
 * {@linkcode WAIT_NOTE_DELAY_MS} and stderr is a terminal, writes `note`
 * there once.
 *
 * @param work the wait
 * @param note one sentence: what is awaited and for how long at most
 * @returns what `work` resolves to
 */
export async function withWaitNote<T>(
  work: Promise<T>,
  note: string,
): Promise<T> {
  // node:process, not Deno: the SDK runs this on Node.js too.
  if (!process.stderr.isTTY) return await work;
  const timer = setTimeout(() => {
    try {
      process.stderr.write(`${note}…\n`);
    } catch {
      // A closed terminal needs no note.
    }
  }, WAIT_NOTE_DELAY_MS);
  try {
    return await work;
  } finally {
    clearTimeout(timer);
  }
}
