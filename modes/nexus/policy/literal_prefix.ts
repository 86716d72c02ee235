// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The literal prefix of a policy pattern: characters every whole-string
 * match must start with, so a listing can read only that range of keys.
 *
 * @module
 */

// Characters that end the literal part: anything that is not one fixed
// character (classes, groups, alternation, anchors, wildcards).
const SPECIAL = new Set([..."\\.[](){}|^$*+?"]);
// What may follow a backslash and still mean that one character.
const ESCAPED_LITERAL = /^[\\/.\-_[\](){}|^$*+?]$/;

/**
 * The longest string that every string fully matching `pattern` starts
 * with, as far as a left-to-right reading of plain characters can tell;
 * "" when the pattern starts with anything else. Conservative: a shorter
 * prefix than possible is fine, a wrong one never happens.
 *
 * - `tenants/acme/.*` -> `tenants/acme/`
 * - `^apps/db$` -> `apps/db`
 * - `apps/(a|b)/x` -> `apps/`; `a|b` -> "" (alternation at the top)
 * - `ab?c` -> `a` (the `b` is optional); `ab+` -> `ab`
 * - `a\.b/.*` -> `a.b/`
 *
 * @param pattern a validated policy pattern (implicitly anchored)
 * @returns the literal prefix
 */
export function literalPrefix(pattern: string): string {
  if (hasTopLevelAlternation(pattern)) return "";
  let i = pattern.startsWith("^") ? 1 : 0;
  let prefix = "";
  while (i < pattern.length) {
    const c = pattern[i]!;
    let literal: string;
    if (c === "\\") {
      const next = pattern[i + 1] ?? "";
      if (!ESCAPED_LITERAL.test(next)) break;
      literal = next;
      i += 2;
    } else if (SPECIAL.has(c)) {
      break;
    } else {
      literal = c;
      i += 1;
    }
    const quantifier = pattern[i];
    // Optional or counted (possibly zero times): not part of every match.
    if (quantifier === "?" || quantifier === "*" || quantifier === "{") break;
    prefix += literal;
    // At least once: this character is certain, what follows is not.
    if (quantifier === "+") break;
  }
  return prefix;
}

// Whether `|` appears outside every group and character class.
function hasTopLevelAlternation(pattern: string): boolean {
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      i++;
    } else if (inClass) {
      if (c === "]") inClass = false;
    } else if (c === "[") {
      inClass = true;
    } else if (c === "(") {
      depth++;
    } else if (c === ")") {
      depth--;
    } else if (c === "|" && depth === 0) {
      return true;
    }
  }
  return false;
}
