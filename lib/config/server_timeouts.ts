// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The HTTP server settings nexus and keeper share: the timeouts, from
 * upstream's variable names, and how refused connections are logged.
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
  /** Interval over which refused connections are counted per source, ms. */
  readonly refusalIntervalMs: number;
}

/**
 * Reads `SPIKE_HTTP_SERVER_READ_HEADER_TIMEOUT` (10s),
 * `SPIKE_HTTP_SERVER_REQUEST_TIMEOUT` (60s) and
 * `SPIKE_HTTP_SERVER_REFUSAL_LOG_INTERVAL` (60s: at most one line per
 * source for refused connections, plus one count). Zero would switch the
 * protections off, so only positive durations pass.
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
    refusalIntervalMs: envPositiveDuration(
      "SPIKE_HTTP_SERVER_REFUSAL_LOG_INTERVAL",
      60_000,
    ),
  };
}
