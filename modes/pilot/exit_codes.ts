// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The exit codes of `spike pilot`, one per kind of outcome, so scripts can
 * tell "try again later" (locked, unreachable) from "fix your input".
 *
 * @module
 */

/** Exit codes of `spike pilot`. */
export const ExitCode = {
  /** The command did what was asked. */
  Ok: 0,
  /** Any failure without a more specific code (incl. a failed drill). */
  Failure: 1,
  /** Invalid input or usage: bad arguments, flags, files or shards. */
  Usage: 2,
  /** The secret, version, key or policy does not exist. */
  NotFound: 3,
  /** This identity may not do this (nexus said 401, or the SVID lacks the role). */
  Unauthorized: 4,
  /** SPIKE Nexus is locked (it waits for its root key) or holds its store. */
  NotReady: 5,
  /** SPIKE Nexus cannot be reached (refused, timeout, TLS or identity failure). */
  Unreachable: 6,
  /** A conflict: compare-and-set mismatch, existing policy, nexus already unlocked, shard already given. */
  Conflict: 7,
} as const;

/** One of the {@linkcode ExitCode} values. */
export type ExitCodeValue = typeof ExitCode[keyof typeof ExitCode];

/** The exit codes as documented in `spike pilot --help` and the README. */
export const EXIT_CODE_TABLE: readonly [ExitCodeValue, string][] = [
  [ExitCode.Ok, "success"],
  [
    ExitCode.Failure,
    "failure (anything not listed below; a drill that would not restore)",
  ],
  [ExitCode.Usage, "invalid input or usage (arguments, flags, files, shards)"],
  [ExitCode.NotFound, "not found (secret, version, key, policy)"],
  [
    ExitCode.Unauthorized,
    "unauthorized (nexus refused this SPIFFE ID, or it lacks the role)",
  ],
  [
    ExitCode.NotReady,
    "SPIKE Nexus is locked, waiting for its root key, or holds its store",
  ],
  [
    ExitCode.Unreachable,
    "SPIKE Nexus unreachable (refused, timeout, TLS or wrong server identity)",
  ],
  [
    ExitCode.Conflict,
    "conflict (compare-and-set mismatch, policy exists, nexus already unlocked, shard already given)",
  ],
];
