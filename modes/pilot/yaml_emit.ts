// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A small YAML emitter for pilot's `--format yaml` output: maps, lists,
 * strings, numbers, booleans and null — the shapes nexus answers with.
 * Strings that YAML would read as something else are double-quoted (JSON
 * string syntax is valid YAML), so the output reads back as the same data.
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

// Plain scalars YAML 1.1 or 1.2 would read as null, booleans or numbers.
const SPECIAL_WORDS =
  /^(?:~|null|true|false|yes|no|on|off|y|n|\.nan|[-+]?\.inf)$/i;
const NUMBER_LIKE =
  /^[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?$|^0x[0-9a-f]+$|^0o[0-7]+$/i;
// Characters that start a YAML indicator when they lead a plain scalar.
const LEADING_INDICATOR = /^[-?:,[\]{}#&*!|>'"%@`\s]/;

function needsQuotes(text: string): boolean {
  return text === "" ||
    SPECIAL_WORDS.test(text) ||
    NUMBER_LIKE.test(text) ||
    LEADING_INDICATOR.test(text) ||
    /\s$/.test(text) ||
    text.includes(": ") ||
    text.endsWith(":") ||
    text.includes(" #") ||
    // Control characters, line breaks and non-ASCII go through escapes.
    /[^\x20-\x7e]/.test(text);
}

function scalar(value: null | undefined | boolean | number | string): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    return Number.isFinite(value)
      ? String(value)
      : JSON.stringify(String(value));
  }
  return needsQuotes(value) ? JSON.stringify(value) : value;
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
