// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * What the benchmark asks of its load generator and what it gets back; the
 * generator is a separate process, so these travel as JSON.
 *
 * @module
 */

/** One kind of request in a load mix. */
export interface RequestSpec {
  /** Short name, for per-kind figures. */
  readonly label: string;
  /** Path and query, e.g. `/v1/store/secrets?action=get`. */
  readonly route: string;
  /**
   * The body. `{i}` is replaced by a running request number modulo
   * `modulo`, so a mix can walk over many paths.
   */
  readonly body: string;
  /** The body is base64 of raw bytes (sent as they are). */
  readonly binary?: boolean;
  /** Content type; default `application/json`. */
  readonly contentType?: string;
  /** Range of `{i}`; default 1. */
  readonly modulo?: number;
  /** Relative share of this kind in the mix; default 1. */
  readonly weight?: number;
  /**
   * The secret path this request reads (`{i}` as in `body`), for the SDK
   * client, which sends `Spike.get(path)` instead of the raw body.
   */
  readonly path?: string;
}

/** A load run. */
export interface LoadConfig {
  /** Server base URL, `https://127.0.0.1:<port>`. */
  readonly url: string;
  /** SVID directory of the calling identity. */
  readonly svidDir: string;
  /** Concurrent clients, each with at most one request in flight. */
  readonly concurrency: number;
  /** Keep connections open between requests (false: a handshake per request). */
  readonly keepAlive: boolean;
  /** Unmeasured run-in before the measured window. */
  readonly warmupMs: number;
  /** Length of the measured window; ignored when `count` is set. */
  readonly durationMs: number;
  /** Send exactly this many requests instead of running for a duration. */
  readonly count?: number;
  /** The request mix. */
  readonly requests: readonly RequestSpec[];
  /**
   * Who sends: the bench's own mTLS client posting raw bodies (default),
   * or the workload SDK reading `path` with `Spike.get`.
   */
  readonly client?: "mtls" | "sdk";
}

/** Latency figures in milliseconds. */
export interface Latency {
  /** Median. */
  readonly p50: number;
  /** 99th percentile. */
  readonly p99: number;
  /** Slowest. */
  readonly max: number;
  /** Mean. */
  readonly mean: number;
}

/** What the generator reports for one run. */
export interface LoadResult {
  /** Requests answered 200 in the measured window. */
  readonly ok: number;
  /** Requests that failed or got another status. */
  readonly errors: number;
  /** The first failure, for the operator. */
  readonly firstError?: string;
  /** Length of the measured window, in milliseconds. */
  readonly elapsedMs: number;
  /** Successful requests per second. */
  readonly rps: number;
  /** Latency of successful requests. */
  readonly latency: Latency;
  /** Latency per request kind. */
  readonly byLabel: Record<string, Latency & { readonly ok: number }>;
  /**
   * The generator's own CPU time (user + system, all threads) over the
   * measured window, in milliseconds: next to its elapsed time it shows
   * whether the client, not the server, was the limit.
   */
  readonly cpuMs: number;
}

/** The line the generator prints when the measured window opens. */
export const START_MARKER = "measuring";
