// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A small YAML emitter for pilot's `--format yaml` output: maps, lists,
 * strings, numbers, booleans and null — the shapes nexus answers with.
 * Strings are plain only when made of a conservative set of characters that
 * every YAML 1.1 and 1.2 reader takes as that same string; all others are
 * double-quoted (JSON string syntax, with `\uXXXX` escapes for the
 * characters YAML would not read raw), so the output reads back as the same
 * data.
 *
 * @module
 */

/** A value {@linkcode toYaml} can write. */
export type YamlValue =
  | null
  | undefined
  | boolean
  | number
  | string
  | readonly YamlValue[]
  | { readonly [key: string]: YamlValue };

// Plain scalars YAML 1.1 or 1.2 would read as null or booleans; every
// number, timestamp and sexagesimal form starts with a digit, sign or dot,
// which PLAIN_SAFE never lets a plain scalar start with.
const SPECIAL_WORDS = /^(?:null|true|false|yes|no|on|off|y|n)$/i;
// What may stay plain: a conservative set that no YAML 1.1 or 1.2 reader
// (PyYAML, libyaml, yaml.v2, Psych) resolves to anything but a string. It
// starts with a letter, `_`, `/` or `^` (never an indicator, digit, sign,
// dot, `~`, `=` or `<`, so no number, timestamp, merge key, value tag or
// document marker); single blanks only between other characters; `:` never
// next to a blank or at the end, and no `#`, so nothing ends the scalar.
const PLAIN_SAFE =
  /^[A-Za-z_/^](?:[A-Za-z0-9_/.@+^$*()|\\?=-]|:(?=[^ ])| (?=[^ :]))*$/;
// JSON.stringify leaves these raw; YAML readers refuse them (U+007F-U+009F,
// U+FFFE, U+FFFF are not printable) or take them as line breaks or a byte
// order mark (U+0085, U+2028, U+2029, U+FEFF).
const RAW_IN_JSON = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g;

function needsQuotes(text: string): boolean {
  return !PLAIN_SAFE.test(text) || SPECIAL_WORDS.test(text);
}

/** A YAML double-quoted scalar: JSON string syntax plus `\uXXXX` escapes. */
function quote(text: string): string {
  return JSON.stringify(text).replace(
    RAW_IN_JSON,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function scalar(value: null | undefined | boolean | number | string): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    return Number.isFinite(value) ? String(value) : quote(String(value));
  }
  return needsQuotes(value) ? quote(value) : value;
}

function isScalar(
  value: YamlValue,
): value is null | undefined | boolean | number | string {
  return value === null || typeof value !== "object";
}

function isEmptyCollection(value: YamlValue): boolean {
  if (Array.isArray(value)) return value.length === 0;
  return value !== null && typeof value === "object" &&
    Object.keys(value).length === 0;
}

function emit(value: YamlValue, indent: string, lines: string[]): void {
  if (Array.isArray(value)) {
    for (const item of value as readonly YamlValue[]) {
      if (isScalar(item) || isEmptyCollection(item)) {
        lines.push(`${indent}- ${inline(item)}`);
      } else {
        // The first line of a nested block shares the dash's line.
        const nested: string[] = [];
        emit(item, `${indent}  `, nested);
        lines.push(`${indent}- ${nested[0]!.slice(indent.length + 2)}`);
        lines.push(...nested.slice(1));
      }
    }
    return;
  }
  for (
    const [key, item] of Object.entries(value as Record<string, YamlValue>)
  ) {
    if (isScalar(item) || isEmptyCollection(item)) {
      lines.push(`${indent}${scalar(key)}: ${inline(item)}`);
    } else {
      lines.push(`${indent}${scalar(key)}:`);
      emit(item, `${indent}  `, lines);
    }
  }
}

function inline(value: YamlValue): string {
  if (isScalar(value)) return scalar(value);
  return Array.isArray(value) ? "[]" : "{}";
}

/**
 * Writes a value as a YAML document (block style, 2-space indentation).
 *
 * @param value the data
 * @returns the YAML text, ending with a newline
 */
export function toYaml(value: YamlValue): string {
  if (isScalar(value) || isEmptyCollection(value)) return `${inline(value)}\n`;
  const lines: string[] = [];
  emit(value, "", lines);
  return `${lines.join("\n")}\n`;
}
