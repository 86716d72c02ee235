// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Where pilot writes: data on stdout (all bytes, in order), prompts and
 * diagnostics on stderr; and rendering of data in the chosen format.
 *
 * @module
 */
import type { Format } from "./args.ts";
import { toYaml, type YamlValue } from "./yaml_emit.ts";

const encoder = new TextEncoder();

async function writeAll(
  stream: { write(p: Uint8Array): Promise<number> },
  data: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    offset += await stream.write(data.subarray(offset));
  }
}

/**
 * Writes data to stdout.
 *
 * @param data text (written as UTF-8) or bytes
 */
export async function writeStdout(data: string | Uint8Array): Promise<void> {
  await writeAll(
    Deno.stdout,
    typeof data === "string" ? encoder.encode(data) : data,
  );
}

/**
 * Writes a prompt or a diagnostic to stderr, as is (no newline added).
 *
 * @param text the text
 */
export async function writeStderr(text: string): Promise<void> {
  await writeAll(Deno.stderr, encoder.encode(text));
}

/**
 * Renders data: JSON (2-space indentation), YAML, or the command's own
 * human layout.
 *
 * @param value JSON data, for json and yaml
 * @param format the output format
 * @param human the human layout, built only when asked for
 * @returns the text, ending with a newline
 */
export function render(
  value: unknown,
  format: Format,
  human: () => string,
): string {
  switch (format) {
    case "json":
      return `${JSON.stringify(value ?? null, null, 2)}\n`;
    case "yaml":
      // Values are JSON data (from nexus or built by pilot).
      return toYaml(value as YamlValue);
    case "human": {
      const text = human();
      return text.endsWith("\n") ? text : `${text}\n`;
    }
  }
}

/**
 * A time from nexus (RFC 3339) in a short readable form.
 *
 * @param value the time, or anything else nexus sent
 * @returns `YYYY-MM-DD HH:MM:SS UTC`, `-` for null/absent, or the value as is
 */
export function formatTime(value: unknown): string {
  if (value === null || value === undefined || value === "") return "-";
  const text = String(value);
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return text;
  // Go's zero time (year 1) means "never".
  if (date.getUTCFullYear() <= 1) return "-";
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}
