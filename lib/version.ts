// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The program version, printed by `spike --version` and
 * `spike pilot --version`.
 *
 * @module
 */

/** The program version. */
export const VERSION = "0.1.0";
