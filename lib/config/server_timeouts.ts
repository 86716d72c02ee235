// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The HTTP server timeouts nexus and keeper share, from upstream's
 * variable names.
 *
 * @module
 */
import { envPositiveDuration } from "./env.ts";

/** How long a client may take to send its request. */
export interface ServerTimeouts {
  /** Time to send the request headers, ms. */
  readonly headersTimeoutMs: number;
  /** Time to send the whole request, ms. */
  readonly requestTimeoutMs: number;
}

/**
 * Reads `SPIKE_HTTP_SERVER_READ_HEADER_TIMEOUT` (10s) and
 * `SPIKE_HTTP_SERVER_REQUEST_TIMEOUT` (60s). Zero would switch the
 * protection against slow clients off, so only positive durations pass.
 *
 * @returns the timeouts
 * @throws {ConfigError} when a variable is invalid or not positive
 */
export function readServerTimeouts(): ServerTimeouts {
  return {
    headersTimeoutMs: envPositiveDuration(
      "SPIKE_HTTP_SERVER_READ_HEADER_TIMEOUT",
      10_000,
    ),
    requestTimeoutMs: envPositiveDuration(
      "SPIKE_HTTP_SERVER_REQUEST_TIMEOUT",
      60_000,
    ),
  };
}
