// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Compiles policy patterns for whole-string matching, and tells which
 * patterns may reach the reserved `spike/system` paths.
 *
 * @module
 */
import { RESERVED_PATH_PREFIX } from "../../../lib/wire/validate.ts";

/**
 * Compiles a policy pattern so it matches the whole string only:
 * `^(?:<pattern>)$` in Unicode mode. A pattern the user already anchored
 * (`^…$`) means the same thing after wrapping. Without this, upstream's
 * `acme` matched `tenants/acme/db` — a substring match that granted more
 * than the policy said.
 *
 * The pattern must have passed the validators of `lib/wire/validate.ts`
 * first: they compile it on its own, so it has balanced groups and cannot
 * close the wrapping group early (`a)|(.*` does not compile alone).
 *
 * @param pattern a validated pattern
 * @returns the anchored expression (no `g`/`y` flag, so `test` keeps no state)
 * @throws {SyntaxError} when the pattern is not a valid expression
 */
export function compileAnchored(pattern: string): RegExp {
  new RegExp(pattern, "u");
  return new RegExp(`^(?:${pattern})$`, "u");
}

const SYNTAX = new Set([..."^$\\.*+?()[]{}|/"]);
const QUANTIFIERS = new Set([..."*+?{"]);

/** Splits a pattern at the `|` that are outside groups and classes. */
function topLevelAlternatives(pattern: string): string[] {
  const alternatives: string[] = [];
  let depth = 0;
  let inClass = false;
  let start = 0;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === "\\") {
      i++;
    } else if (inClass) {
      if (ch === "]") inClass = false;
    } else if (ch === "[") {
      inClass = true;
    } else if (ch === "(") {
      depth++;
    } else if (ch === ")") {
      depth--;
    } else if (ch === "|" && depth === 0) {
      alternatives.push(pattern.slice(start, i));
      start = i + 1;
    }
  }
  alternatives.push(pattern.slice(start));
  return alternatives;
}

/**
 * The literal text every string an alternative matches starts with: its
 * characters up to the first one that is not a plain or escaped literal,
 * dropping a character that a quantifier makes optional or repeatable.
 */
function literalPrefixOf(alternative: string): string {
  let prefix = "";
  let i = alternative.startsWith("^") ? 1 : 0;
  while (i < alternative.length) {
    let ch = alternative[i]!;
    let width = 1;
    if (ch === "\\") {
      const next = alternative[i + 1];
      // `\d`, `\u0073` and the like are classes or codes, not literals.
      if (next === undefined || !SYNTAX.has(next)) break;
      ch = next;
      width = 2;
    } else if (SYNTAX.has(ch) && ch !== "/") {
      break;
    }
    if (QUANTIFIERS.has(alternative[i + width] ?? "")) break;
    prefix += ch;
    i += width;
  }
  return prefix;
}

/**
 * Whether a path pattern may reach the reserved paths (`spike/system` and
 * below): only when every one of its top-level alternatives starts with the
 * literal text `spike/system`. So `spike/system/acl`, `spike/system/.*` and
 * `^spike/system/(acl|secret)$` reach them; `.*`, `s.*`, `[a-z]+/.*` and
 * `spike/system/acl|.*` do not, although they match those paths as text. A
 * policy meant for secrets ("everything") never hands out policy
 * administration, the cipher or the global secret list by accident.
 *
 * @param pattern a validated path pattern
 * @returns true when the pattern names the reserved prefix literally
 */
export function reachesReservedPaths(pattern: string): boolean {
  return topLevelAlternatives(pattern).every((alternative) =>
    literalPrefixOf(alternative).startsWith(RESERVED_PATH_PREFIX)
  );
}
