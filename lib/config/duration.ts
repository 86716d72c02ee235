// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Go-style durations (`500ms`, `30s`, `5m`, `1h30m`), as SPIKE's
 * environment variables use them.
 *
 * @module
 */

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Raised for a string that is not a Go-style duration. */
export class DurationError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "DurationError";
  }
}

/**
 * Parses a Go-style duration into milliseconds.
 *
 * @param text e.g. `30s`, `5m`, `1h30m`, `250ms`
 * @returns the duration in milliseconds
 * @throws {DurationError} when the text is not a duration
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (trimmed === "0") return 0;
  const part = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < trimmed.length) {
    part.lastIndex = pos;
    const m = part.exec(trimmed);
    if (!m) break;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = part.lastIndex;
  }
  if (pos === 0 || pos !== trimmed.length) {
    throw new DurationError(
      `Invalid duration "${trimmed}": use a number with a unit, e.g. 500ms, 30s, 5m, 1h`,
    );
  }
  return total;
}

/**
 * Formats milliseconds as a Go-style duration, as an operator would set it.
 *
 * @param ms the duration
 * @returns e.g. `30s` or `1500ms`
 */
export function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
