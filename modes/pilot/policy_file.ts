// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Reads a policy file for `spike pilot policy apply --file`: JSON, or the
 * flat YAML shape upstream SPIKE documents:
 *
 * ```yaml
 * name: web-read
 * spiffeidPattern: ^spiffe://example\.org/web/.*$
 * pathPattern: ^apps/web/.*$
 * permissions:
 *   - read        # or: permissions: [read]
 * ```
 *
 * This is not a general YAML parser: it reads one flat mapping of scalars
 * and one-level lists, which is all a policy is, and refuses anything else
 * with the line number. A plain `null`, `Null`, `NULL`, `~` or an empty
 * value is null, as in YAML, so the field counts as missing; every other
 * scalar is a string (`true` or `123` are not booleans or numbers here).
 * JSON files are read strictly: a key given twice is refused, as in YAML.
 *
 * @module
 */
import { JsonBytesError, parseJsonBytes } from "../../lib/wire/json_bytes.ts";

/** The fields of a policy as read from a file (not yet validated). */
export interface PolicyFileFields {
  /** Policy name. */
  name: unknown;
  /** SPIFFE ID regular expression. */
  spiffeidPattern: unknown;
  /** Secret path regular expression. */
  pathPattern: unknown;
  /** Permission names. */
  permissions: unknown;
}

/** Raised for a policy file that cannot be read as a policy. */
export class PolicyFileError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "PolicyFileError";
  }
}

const FIELDS = ["name", "spiffeidPattern", "pathPattern", "permissions"];
// Fields `policy get -f yaml|json` prints that apply ignores, so its output
// can be edited and applied again.
const IGNORED_FIELDS = ["id", "createdAt", "updatedAt"];

/**
 * Parses a policy file, JSON when it starts with `{`, else YAML.
 *
 * @param text the file content
 * @returns the four policy fields (unvalidated)
 * @throws {PolicyFileError} for syntax errors, unknown or missing fields
 */
export function parsePolicyFile(text: string): PolicyFileFields {
  const body = text.replace(/^\uFEFF/, "");
  const data = body.trimStart().startsWith("{")
    ? parseJsonObject(body)
    : parsePolicyYaml(body);
  for (const key of Object.keys(data)) {
    if (!FIELDS.includes(key) && !IGNORED_FIELDS.includes(key)) {
      throw new PolicyFileError(
        `Unknown policy field "${key}": expected ${FIELDS.join(", ")}`,
      );
    }
  }
  const missing = FIELDS.filter((f) => data[f] === undefined);
  if (missing.length > 0) {
    throw new PolicyFileError(
      `Policy file is missing ${missing.join(", ")}`,
    );
  }
  return {
    name: data.name,
    spiffeidPattern: data.spiffeidPattern,
    pathPattern: data.pathPattern,
    permissions: data.permissions,
  };
}

function parseJsonObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    // Strict, unlike JSON.parse: a duplicate key must not silently win.
    value = parseJsonBytes(new TextEncoder().encode(text));
  } catch (e) {
    if (!(e instanceof JsonBytesError)) throw e;
    const [, at, what] = /at byte (\d+): (.*)$/.exec(e.message) ??
      [undefined, undefined, e.message];
    throw new PolicyFileError(
      `Policy file is not valid JSON: ${what}${
        at === undefined ? "" : ` at byte ${at}`
      }`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new PolicyFileError("Policy file must hold one JSON object");
  }
  return value as Record<string, unknown>;
}

/**
 * Reads the flat YAML mapping of a policy: `key: scalar`, `key: [a, b]`,
 * and `key:` followed by `- item` lines. Scalars may be plain, 'single' or
 * "double" quoted; `#` starts a comment outside quotes. A leading `---`
 * document marker is allowed. A plain `null`, `Null`, `NULL`, `~` or no
 * value at all is null and read as `undefined`.
 *
 * @param text the YAML text
 * @returns the mapping, lists as string arrays, null as `undefined`
 * @throws {PolicyFileError} naming the line of the first problem
 */
export function parsePolicyYaml(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let listKey: string | undefined;
  const blockKeys: string[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const n = i + 1;
    const fail = (what: string): never => {
      throw new PolicyFileError(`Policy file line ${n}: ${what}`);
    };
    if (raw.includes("\t") && /^\s*\t/.test(raw)) {
      fail("tabs cannot indent YAML");
    }
    const line = stripComment(raw, fail).trimEnd();
    if (line.trim() === "" || (line === "---" && isBlankBefore(lines, i))) {
      return;
    }
    const item = /^(\s*)-(?:\s+(.*))?$/.exec(line);
    if (item) {
      if (listKey === undefined) fail("a list item must follow a key");
      const value = readScalar(item[2] ?? "", fail);
      if (value === undefined) fail("a list entry cannot be null");
      (out[listKey!] as string[]).push(value!);
      return;
    }
    if (/^\s/.test(line)) fail("nested mappings are not part of a policy");
    const entry = /^([A-Za-z_][A-Za-z0-9_]*)\s*:(?:\s+(.*))?$/.exec(line);
    if (!entry) fail('expected "key: value"');
    const [, key, rest] = entry!;
    if (Object.hasOwn(out, key!)) fail(`"${key}" is given twice`);
    const value = (rest ?? "").trim();
    if (value === "") {
      listKey = key!;
      blockKeys.push(key!);
      out[key!] = [];
    } else {
      listKey = undefined;
      out[key!] = value.startsWith("[")
        ? readFlowList(value, fail)
        : readScalar(value, fail);
    }
  });
  // `key:` with no items after it is null in YAML: the field is missing.
  for (const key of blockKeys) {
    if ((out[key] as string[]).length === 0) out[key] = undefined;
  }
  return out;
}

function isBlankBefore(lines: string[], i: number): boolean {
  return lines.slice(0, i).every((l) => l.trim() === "" || /^\s*#/.test(l));
}

/** Removes a `#` comment that is outside quotes. */
function stripComment(line: string, fail: (what: string) => never): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote !== undefined) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      // Quotes only open a scalar at its start, as in YAML.
      if (i === 0 || /[\s:[,-]/.test(line[i - 1]!)) quote = c;
    } else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) {
      return line.slice(0, i);
    }
  }
  if (quote !== undefined) fail("a quoted value is not closed");
  return line;
}

/** A scalar's string, or `undefined` for YAML's null. */
function readScalar(
  text: string,
  fail: (what: string) => never,
): string | undefined {
  const value = text.trim();
  if (/^(?:|~|null|Null|NULL)$/.test(value)) return undefined;
  if (value.startsWith('"')) {
    if (!value.endsWith('"') || value.length < 2) {
      fail("a quoted value is not closed");
    }
    try {
      return JSON.parse(value) as string;
    } catch {
      return fail("invalid escape in a double-quoted value");
    }
  }
  if (value.startsWith("'")) {
    if (!value.endsWith("'") || value.length < 2) {
      fail("a quoted value is not closed");
    }
    const inner = value.slice(1, -1);
    if (/'(?!')/.test(inner.replaceAll("''", ""))) {
      fail("a single quote inside '...' must be doubled");
    }
    return inner.replaceAll("''", "'");
  }
  if (/^[[{&*!|>%@`]/.test(value) || /:(\s|$)/.test(value)) {
    fail("this value needs quotes");
  }
  return value;
}

function readFlowList(text: string, fail: (what: string) => never): string[] {
  if (!text.endsWith("]")) fail('a [list] must end with "]" on the same line');
  const inner = text.slice(1, -1).trim();
  if (inner === "") return [];
  const items: string[] = [];
  let current = "";
  let quote: string | undefined;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (quote !== undefined) {
      current += c;
      if (c === "\\" && quote === '"') current += inner[++i] ?? "";
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
      current += c;
    } else if (c === ",") {
      items.push(current);
      current = "";
    } else if (c === "[" || c === "]" || c === "{" || c === "}") {
      fail("nested lists or mappings are not part of a policy");
    } else {
      current += c;
    }
  }
  items.push(current);
  return items.map((item) => {
    if (item.trim() === "") fail("a [list] has an empty entry");
    const value = readScalar(item, fail);
    if (value === undefined) fail("a list entry cannot be null");
    return value!;
  });
}
