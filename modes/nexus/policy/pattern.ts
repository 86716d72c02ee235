// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Compiles policy patterns for whole-string matching.
 *
 * @module
 */

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
