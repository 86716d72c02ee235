// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Input rules shared by nexus (API boundary) and pilot (before sending):
 * secret paths and values, policy names, patterns and permissions, version
 * numbers. Each function takes an untrusted value (straight from parsed
 * JSON or argv), returns it normalized, or throws a {@linkcode ValidationError}
 * naming the field and the rule. Messages never repeat the rejected value,
 * so a secret pasted into the wrong field cannot reach a log.
 *
 * The rules follow upstream SPIKE's validators, tightened where upstream
 * left a hole (see each function).
 *
 * @module
 */
import { MAX_SPIFFE_ID_BYTES } from "../spiffe/id.ts";

/** Raised for input that breaks a rule; `field` names the offending field. */
export class ValidationError extends Error {
  /** The request field (or argument) that broke the rule, e.g. `path`. */
  readonly field: string;
  /** Creates the error with a message naming the field and the rule. */
  constructor(field: string, message: string) {
    super(message);
    this.name = "ValidationError";
    this.field = field;
  }
}

/** The longest secret path and the longest policy pattern, in characters. */
export const MAX_PATH_LENGTH = 500;
/** The longest policy name and secret value key, in characters. */
export const MAX_NAME_LENGTH = 250;
/** The largest version number (Go's `int` as upstream clients send it, kept to 32 bits). */
export const MAX_VERSION = 2 ** 31 - 1;
/** The prefix of paths reserved for the API's own permission checks. */
export const RESERVED_PATH_PREFIX = "spike/system";

/** A policy permission. `super` satisfies every wanted permission. */
export type Permission = "read" | "write" | "list" | "execute" | "super";
/** Every permission, in canonical order. */
export const PERMISSIONS: readonly Permission[] = [
  "read",
  "write",
  "list",
  "execute",
  "super",
];

// Upstream's charsets. The path charset admits regex metacharacters because
// upstream paths may contain them literally; they carry no meaning here.
const PATH_CHARS = /^[a-zA-Z0-9._\-/()?+*|[\]{}\\]+$/;
// A `.` or `..` segment: between slashes or at either end of the path.
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:\/|$)/;
const PATH_PATTERN_CHARS = /^[a-zA-Z0-9._\-/^$()?+*|[\]{}\\]+$/;
const NAME_CHARS = /^[a-zA-Z0-9_ -]+$/;
// Beyond upstream: keys may hold dots, as Vault's and Kubernetes' keys do
// (tls.crt, app.config, .dockerconfigjson).
const SECRET_KEY_CHARS = /^[a-zA-Z0-9._ -]+$/;
// SPIFFE IDs are printable ASCII; a pattern needs nothing else.
const ID_PATTERN_CHARS = /^[\x21-\x7e]+$/;
const ID_PATTERN_PREFIX = /^\^?spiffe:\/\//;

function requireString(value: unknown, field: string, what: string): string {
  if (typeof value !== "string") {
    throw new ValidationError(field, `${what} must be a string`);
  }
  return value;
}

function requireLength(
  value: string,
  max: number,
  field: string,
  what: string,
): void {
  if (value.length === 0 || value.length > max) {
    throw new ValidationError(field, `${what} must be 1 to ${max} characters`);
  }
}

/**
 * Validates a secret path: 1–500 characters of upstream's charset
 * (`a-z A-Z 0-9 . _ - / ( ) ? + * | [ ] { } \`).
 *
 * Beyond upstream: paths are key namespaces, not file paths (upstream
 * ADR-0025), so a leading `/`, empty segments (`//`, trailing `/`) and
 * `.`/`..` segments are refused — they only make one secret look like
 * another or like a traversal. Paths at or under `spike/system` are
 * reserved for permission checks and cannot hold secrets.
 *
 * @param value the untrusted path
 * @param field the request field name, for the error
 * @returns the path
 * @throws {ValidationError} when a rule is broken
 */
export function validateSecretPath(value: unknown, field = "path"): string {
  const path = requireString(value, field, "Secret path");
  requireLength(path, MAX_PATH_LENGTH, field, "Secret path");
  if (!PATH_CHARS.test(path)) {
    throw new ValidationError(
      field,
      "Secret path may only contain letters, digits and . _ - / ( ) ? + * | [ ] { } \\",
    );
  }
  if (path.startsWith("/")) {
    throw new ValidationError(field, "Secret path cannot start with a slash");
  }
  if (path.endsWith("/")) {
    throw new ValidationError(field, "Secret path cannot end with a slash");
  }
  // Tested in place: a split would allocate a list and its strings on
  // every request. The first bad segment names the rule.
  const empty = path.indexOf("//");
  const dots = path.search(DOT_SEGMENT);
  if (empty !== -1 && (dots === -1 || empty < dots)) {
    throw new ValidationError(
      field,
      "Secret path cannot contain empty segments",
    );
  }
  if (dots !== -1) {
    throw new ValidationError(
      field,
      "Secret path cannot contain . or .. segments",
    );
  }
  if (isReservedPath(path)) {
    throw new ValidationError(
      field,
      `Secret path cannot be at or under ${RESERVED_PATH_PREFIX}: it is reserved`,
    );
  }
  return path;
}

/**
 * Tells whether a path is at or under the reserved `spike/system` prefix.
 *
 * @param path a secret path
 * @returns true for `spike/system` and `spike/system/...`
 */
export function isReservedPath(path: string): boolean {
  return path === RESERVED_PATH_PREFIX ||
    path.startsWith(`${RESERVED_PATH_PREFIX}/`);
}

function validateName(value: unknown, field: string, what: string): string {
  const name = requireString(value, field, what);
  requireLength(name, MAX_NAME_LENGTH, field, what);
  if (!NAME_CHARS.test(name)) {
    throw new ValidationError(
      field,
      `${what} may only contain letters, digits, dashes, underscores and spaces`,
    );
  }
  return name;
}

/**
 * Validates one key of a secret's values: 1–250 characters of letters,
 * digits, `.`, `_`, `-` and space, and not `.` or `..` (a key may become a
 * file name, as in a Kubernetes secret volume). Upstream allows no dot;
 * every upstream key is still valid.
 *
 * @param value the untrusted key
 * @param field the request field name, for the error
 * @returns the key
 * @throws {ValidationError} when a rule is broken; never names the key's value
 */
export function validateSecretKey(value: unknown, field = "values"): string {
  const what = "Secret value key";
  const key = requireString(value, field, what);
  requireLength(key, MAX_NAME_LENGTH, field, what);
  if (!SECRET_KEY_CHARS.test(key)) {
    throw new ValidationError(
      field,
      `${what} may only contain letters, digits, dots, dashes, underscores and spaces`,
    );
  }
  if (key === "." || key === "..") {
    throw new ValidationError(field, `${what} cannot be "." or ".."`);
  }
  return key;
}

/**
 * Validates the values of a secret: a JSON object whose keys pass
 * {@linkcode validateSecretKey} and whose values are
 * strings (no length limit besides the request body limit). An empty object
 * is accepted; `null`, arrays and non-string values are not (upstream
 * accepted `null` and stored a version without data).
 *
 * @param value the untrusted values map
 * @param field the request field name, for the error
 * @returns a fresh copy with own data properties only (so a `__proto__`
 *   key stays an ordinary key)
 * @throws {ValidationError} when a rule is broken; never names a value
 */
export function validateSecretValues(
  value: unknown,
  field = "values",
): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ValidationError(
      field,
      "Secret values must be an object of string keys and string values",
    );
  }
  const entries = Object.entries(value);
  for (const [key, item] of entries) {
    validateSecretKey(key, field);
    if (typeof item !== "string") {
      throw new ValidationError(field, "Secret values must be strings");
    }
  }
  return Object.fromEntries(entries);
}

/**
 * Validates a policy name: 1–250 characters of letters, digits, `-`, `_`
 * and space.
 *
 * @param value the untrusted name
 * @param field the request field name (upstream sends the name in `id` for get/delete)
 * @returns the name
 * @throws {ValidationError} when a rule is broken
 */
export function validatePolicyName(value: unknown, field = "name"): string {
  return validateName(value, field, "Policy name");
}

/**
 * Validates a SPIFFE-ID pattern: 1–500 printable ASCII characters, starting
 * with an optional `^` then `spiffe://` (upstream's form), a valid regular
 * expression in Unicode mode, and safe to run (see
 * {@linkcode checkPatternSafety}). The pattern is stored as written; the
 * policy engine matches it against the whole ID.
 *
 * @param value the untrusted pattern
 * @param field the request field name, for the error
 * @returns the pattern
 * @throws {ValidationError} when a rule is broken
 */
export function validateSpiffeIdPattern(
  value: unknown,
  field = "spiffeidPattern",
): string {
  const what = "SPIFFE ID pattern";
  const pattern = requireString(value, field, what);
  requireLength(pattern, MAX_PATH_LENGTH, field, what);
  if (!ID_PATTERN_CHARS.test(pattern)) {
    throw new ValidationError(
      field,
      `${what} may only contain printable ASCII characters without spaces`,
    );
  }
  if (!ID_PATTERN_PREFIX.test(pattern)) {
    throw new ValidationError(
      field,
      `${what} must start with spiffe:// (optionally preceded by ^)`,
    );
  }
  return validateRegExp(pattern, field, what, MAX_SPIFFE_ID_BYTES);
}

/**
 * Validates a path pattern: 1–500 characters of upstream's charset
 * (the secret path charset plus `^` and `$`), a valid regular expression in
 * Unicode mode, and safe to run (see {@linkcode checkPatternSafety}).
 *
 * @param value the untrusted pattern
 * @param field the request field name, for the error
 * @returns the pattern
 * @throws {ValidationError} when a rule is broken
 */
export function validatePathPattern(
  value: unknown,
  field = "pathPattern",
): string {
  const what = "Path pattern";
  const pattern = requireString(value, field, what);
  requireLength(pattern, MAX_PATH_LENGTH, field, what);
  if (!PATH_PATTERN_CHARS.test(pattern)) {
    throw new ValidationError(
      field,
      `${what} may only contain letters, digits and . _ - / ^ $ ( ) ? + * | [ ] { } \\`,
    );
  }
  return validateRegExp(pattern, field, what, MAX_PATH_LENGTH);
}

function validateRegExp(
  pattern: string,
  field: string,
  what: string,
  subjectLength: number,
): string {
  try {
    // Unicode mode refuses the odd legacy escapes and lone braces that
    // plain mode silently reads as literals.
    new RegExp(pattern, "u");
  } catch {
    throw new ValidationError(
      field,
      `${what} must be a valid regular expression`,
    );
  }
  checkPatternSafety(pattern, field, what, subjectLength);
  return pattern;
}

/**
 * Patterns are matched by a backtracking engine, so their worst-case cost is
 * bounded statically. The cost of a pattern is the product of the choices its
 * quantifiers and alternations offer (`?` offers 2, `{2,5}` 4, `a|b|c` 3),
 * an unbounded quantifier counting as many choices as the longest subject
 * has characters (500 for paths, 2048 for SPIFFE IDs). The limit, 500³,
 * admits three unbounded quantifiers in a path pattern
 * (`tenants/[^/]+/apps/[^/]+/.*`) and two in a SPIFFE ID pattern, and keeps
 * the worst match of the longest subject to a fraction of a second; one more
 * does not fit (`spiffe://x/a*a*a*b` against a 2048-byte ID takes seconds).
 */
export const MAX_PATTERN_COST = MAX_PATH_LENGTH ** 3;
const MAX_REPEAT_BOUND = 1000;

interface Frame {
  /** The group holds a quantifier, directly or in a subgroup. */
  quantified: boolean;
  /** The group holds an alternation, directly or in a subgroup. */
  alternation: boolean;
  /** Number of top-level alternatives of the group. */
  branches: number;
}

const QUANTIFIER = /[*+?]|\{(\d+)(,(\d*))?\}/y;

/**
 * Refuses regular expressions that could make a backtracking engine run for
 * a long time: nested quantifiers (star height above one, e.g. `(a+)+`,
 * `(.*)*`), a repeated group holding an alternation (`(a|a)*`),
 * backreferences (`\1`, `\k<n>`), lookaround and other `(?` group syntax
 * except `(?:` and named groups, repetition bounds above 1000, and patterns
 * whose combined cost exceeds {@linkcode MAX_PATTERN_COST}.
 * Expects a pattern that already compiles in Unicode mode.
 *
 * @param pattern the pattern as written by the user
 * @param field the request field name, for the error
 * @param what the human name of the field, for the message
 * @param subjectLength the longest string the pattern is matched against
 * @throws {ValidationError} naming the unsafe construct
 */
export function checkPatternSafety(
  pattern: string,
  field: string,
  what = "Pattern",
  subjectLength: number = MAX_PATH_LENGTH,
): void {
  const unboundedChoices = subjectLength;
  const refuse = (rule: string): never => {
    throw new ValidationError(field, `${what} cannot use ${rule}`);
  };
  const stack: Frame[] = [{
    quantified: false,
    alternation: false,
    branches: 1,
  }];
  const top = (): Frame => stack[stack.length - 1]!;
  let cost = 1;
  // The group that just closed, when it is the atom a quantifier would apply to.
  let closedGroup: Frame | undefined;
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    QUANTIFIER.lastIndex = i;
    const quantifier = QUANTIFIER.exec(pattern);
    if (quantifier !== null) {
      const [text, minText, comma, maxText] = quantifier;
      let min = 0;
      let max = Infinity;
      if (text === "+") min = 1;
      else if (text === "?") max = 1;
      else if (minText !== undefined) {
        min = Number(minText);
        max = comma === undefined
          ? min
          : maxText === ""
          ? Infinity
          : Number(maxText);
        if (
          min > MAX_REPEAT_BOUND || max !== Infinity && max > MAX_REPEAT_BOUND
        ) {
          refuse(`repetition counts above ${MAX_REPEAT_BOUND}`);
        }
      }
      if (
        max > 1 && closedGroup !== undefined &&
        (closedGroup.quantified || closedGroup.alternation)
      ) {
        refuse(
          "a repeated group that holds a quantifier or an alternation (nested quantifiers)",
        );
      }
      cost *= max === Infinity
        ? unboundedChoices
        : Math.min(max - min + 1, unboundedChoices);
      top().quantified = true;
      closedGroup = undefined;
      i += text.length;
      if (pattern[i] === "?") i++; // lazy: same worst case
      continue;
    }
    closedGroup = undefined;
    if (c === "\\") {
      const next = pattern[i + 1] ?? "";
      if (/[1-9k]/.test(next)) refuse("backreferences");
      if (/[pPu]/.test(next) && pattern[i + 2] === "{") {
        i = pattern.indexOf("}", i) + 1;
      } else {
        i += 2;
      }
    } else if (c === "[") {
      i++;
      while (i < pattern.length && pattern[i] !== "]") {
        i += pattern[i] === "\\" ? 2 : 1;
      }
      i++;
    } else if (c === "(") {
      if (pattern.startsWith("(?:", i)) {
        i += 3;
      } else if (/^\(\?<[a-zA-Z_$]/.test(pattern.slice(i, i + 4))) {
        i = pattern.indexOf(">", i) + 1;
      } else if (pattern[i + 1] === "?") {
        refuse("lookahead, lookbehind or other (? group syntax");
      } else {
        i++;
      }
      stack.push({ quantified: false, alternation: false, branches: 1 });
    } else if (c === ")") {
      const group = stack.pop()!;
      cost *= group.branches;
      const parent = top();
      parent.quantified ||= group.quantified;
      parent.alternation ||= group.alternation;
      closedGroup = group;
      i++;
    } else if (c === "|") {
      top().alternation = true;
      top().branches++;
      i++;
    } else {
      i++;
    }
    if (cost > MAX_PATTERN_COST) break;
  }
  cost *= top().branches;
  if (cost > MAX_PATTERN_COST) {
    const most = Math.floor(
      Math.log(MAX_PATTERN_COST) / Math.log(unboundedChoices) + 1e-9,
    );
    refuse(
      `this many quantifiers and alternatives (at most ${
        ["no", "one", "two", "three"][most] ?? most
      } unbounded quantifiers)`,
    );
  }
}

/**
 * Validates a permission list: a non-empty array of `read`, `write`,
 * `list`, `execute`, `super`.
 *
 * @param value the untrusted list
 * @param field the request field name, for the error
 * @returns the distinct permissions in canonical order
 * @throws {ValidationError} when a rule is broken
 */
export function validatePermissions(
  value: unknown,
  field = "permissions",
): Permission[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new ValidationError(
      field,
      "Permissions must be a non-empty list",
    );
  }
  const seen = new Set<unknown>(value);
  for (const item of seen) {
    if (!PERMISSIONS.includes(item as Permission)) {
      throw new ValidationError(
        field,
        `Permissions must each be one of ${PERMISSIONS.join(", ")}`,
      );
    }
  }
  return PERMISSIONS.filter((p) => seen.has(p));
}

/**
 * Validates a version number: an integer from 0 to 2^31-1 (0 means the
 * current version).
 *
 * @param value the untrusted number
 * @param field the request field name, for the error
 * @returns the version
 * @throws {ValidationError} for non-numbers, fractions, negatives and overflow
 */
export function validateVersion(value: unknown, field = "version"): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 0 ||
    value > MAX_VERSION
  ) {
    throw new ValidationError(
      field,
      `Version must be an integer from 0 to ${MAX_VERSION}`,
    );
  }
  return value;
}

/**
 * Validates an optional version: absent or `null` means 0 (the current
 * version), as upstream clients send it.
 *
 * @param value the untrusted number, `undefined` or `null`
 * @param field the request field name, for the error
 * @returns the version, 0 when absent
 * @throws {ValidationError} as {@linkcode validateVersion}
 */
export function validateOptionalVersion(
  value: unknown,
  field = "version",
): number {
  return value === undefined || value === null
    ? 0
    : validateVersion(value, field);
}

/**
 * Validates a list of versions (delete/undelete). Absent or `null` means an
 * empty list (the current version, per upstream).
 *
 * @param value the untrusted list
 * @param field the request field name, for the error
 * @returns the distinct versions in first-seen order
 * @throws {ValidationError} when the value is not an array or an element is
 *   not a valid version
 */
export function validateVersions(value: unknown, field = "versions"): number[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    throw new ValidationError(field, "Versions must be a list of integers");
  }
  return [...new Set(value.map((v) => validateVersion(v, field)))];
}

/**
 * Validates an optional compare-and-set version: the version the caller
 * expects to be current (0 = the secret must not exist yet).
 *
 * @param value the untrusted number, `undefined` or `null`
 * @param field the request field name, for the error
 * @returns the expected version, or `undefined` when no check was asked for
 * @throws {ValidationError} as {@linkcode validateVersion}
 */
export function validateCas(
  value: unknown,
  field = "cas",
): number | undefined {
  return value === undefined || value === null
    ? undefined
    : validateVersion(value, field);
}
