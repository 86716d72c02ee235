// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * How the SDK talks to nexus: POSTs over one mTLS client to one of several
 * nexus URLs, failing over to the next URL on a transport failure or a
 * locked nexus, backing off between rounds until the call's deadline, and
 * mapping every answer that is not a success to a typed error.
 *
 * Retries are safe by construction: a call that is not idempotent (a put,
 * a delete of "the current version") is sent again only when the failed
 * attempt provably never reached nexus (connection refused, handshake
 * failure) or nexus answered 503 without acting. Denials and invalid
 * requests are never retried.
 *
 * @module
 */
import { type MtlsClient, MtlsClientError } from "../lib/mtls/client.ts";
import type { MtlsResult } from "../lib/mtls/client.ts";
import {
  SpikeBadRequestError,
  SpikeConflictError,
  SpikeDeniedError,
  SpikeError,
  SpikeLockedError,
  SpikeNotFoundError,
  SpikeServerError,
  SpikeTransportError,
} from "./errors.ts";
import { parseByteJson, wipeByteJson } from "./_secret_json.ts";

/** Backoff and deadline of calls. */
export interface RetrySettings {
  /** Longest time a call may take, retries included. */
  readonly deadlineMs: number;
  /** First wait after every URL failed once. */
  readonly initialDelayMs: number;
  /** Longest wait between rounds. */
  readonly maxDelayMs: number;
  /** Bound on one attempt at one URL. */
  readonly attemptTimeoutMs: number;
}

/** Whether a call may be sent twice without changing its effect. */
export type Safety = "idempotent" | "write";

/** What one call needs besides its body. */
export interface CallSpec {
  /** Path and query, e.g. `/v1/store/secrets?action=get`. */
  readonly route: string;
  /** Whether repeating the call is harmless. */
  readonly safety: Safety;
  /** What the call is about, for messages: `Secret "apps/db"`. */
  readonly subject: string;
  /** Content type; default JSON. */
  readonly contentType?: string;
  /** Per-call deadline override. */
  readonly deadlineMs?: number | undefined;
  /** Cancels the call, retries included. */
  readonly signal?: AbortSignal | undefined;
}

/** The shortest time given to one attempt. */
const MIN_ATTEMPT_MS = 1_000;

/** The answer codes that mean "not now": tried again elsewhere or later. */
const TRANSIENT_STATUSES = new Set([502, 503, 504]);

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function codeOf(body: Uint8Array): string | undefined {
  // Error bodies are `{"err": code}`; a body that is not JSON has no code.
  let parsed;
  try {
    parsed = parseByteJson(body);
  } catch {
    return undefined;
  }
  try {
    if (parsed === null || typeof parsed !== "object") return undefined;
    if (Array.isArray(parsed) || parsed instanceof Uint8Array) return undefined;
    const err = parsed.err;
    if (!(err instanceof Uint8Array) || err.length === 0) return undefined;
    const code = new TextDecoder().decode(err);
    return /^[a-z0-9_]{1,64}$/.test(code) ? code : undefined;
  } finally {
    wipeByteJson(parsed);
  }
}

/**
 * The typed error for an answer that is not a success, or for a success
 * that carries an `err` code (upstream may answer 200 with one).
 *
 * @param status the HTTP status
 * @param code the `err` code of the body
 * @param subject what the call was about
 * @param self this workload's SPIFFE ID
 * @returns the error
 */
export function errorForAnswer(
  status: number,
  code: string | undefined,
  subject: string,
  self: string,
): SpikeError {
  const effective = status === 200 ? statusOfCode(code) : status;
  const suffix = code === undefined ? `HTTP ${status}` : code;
  switch (effective) {
    case 400:
      return new SpikeBadRequestError(
        `SPIKE Nexus refused the request for ${subject} as invalid (${suffix})`,
        code ?? "api_bad_request",
        400,
      );
    case 401:
    case 403:
      return new SpikeDeniedError(
        `SPIKE Nexus denied ${self} access to ${subject}`,
        effective,
        code ?? "access_unauthorized",
      );
    case 404:
      return new SpikeNotFoundError(
        `${subject} not found`,
        code ?? "api_not_found",
      );
    case 409:
      return new SpikeConflictError(
        `${subject} changed: its current version is not the one expected`,
      );
    case 413:
      return new SpikeBadRequestError(
        `The request for ${subject} is larger than SPIKE Nexus accepts`,
        code ?? "api_entity_too_large",
        413,
      );
    case 503:
      return new SpikeLockedError(
        "SPIKE Nexus is locked: it is waiting for its root key",
      );
    default:
      return new SpikeServerError(
        `SPIKE Nexus failed to handle the request for ${subject} (${suffix})`,
        code ?? "api_internal_error",
        status,
      );
  }
}

function statusOfCode(code: string | undefined): number {
  switch (code) {
    case "api_bad_request":
    case "data_invalid_input":
      return 400;
    case "access_unauthorized":
      return 401;
    case "api_not_found":
    case "entity_not_found":
      return 404;
    case "api_conflict":
      return 409;
    case "api_entity_too_large":
      return 413;
    case "state_not_ready":
      return 503;
    default:
      return 500;
  }
}

/** POSTs to nexus with failover, retries and typed errors. */
export class Transport {
  readonly #urls: readonly string[];
  readonly #client: MtlsClient;
  readonly #self: () => string;
  readonly #retry: RetrySettings;
  /** The URL that answered last; calls start there. */
  #preferred = 0;

  /**
   * Binds the transport.
   *
   * @param urls nexus base URLs, without trailing slash
   * @param client the mTLS client (nexus identity only)
   * @param self this workload's current SPIFFE ID, for messages
   * @param retry backoff and deadline
   */
  constructor(
    urls: readonly string[],
    client: MtlsClient,
    self: () => string,
    retry: RetrySettings,
  ) {
    this.#urls = urls;
    this.#client = client;
    this.#self = self;
    this.#retry = retry;
  }

  /**
   * Sends a call and returns its successful answer.
   *
   * @param spec the route and how to treat failures
   * @param body the request body; the caller zeroes secret bodies
   * @returns the 2xx answer; the caller zeroes its body
   * @throws {SpikeError} the typed outcome; after the deadline, the last
   *   transient failure
   */
  async post(spec: CallSpec, body: Uint8Array | string): Promise<MtlsResult> {
    const deadline = Date.now() + (spec.deadlineMs ?? this.#retry.deadlineMs);
    let delay = this.#retry.initialDelayMs;
    let last: SpikeError | undefined;
    for (;;) {
      for (let k = 0; k < this.#urls.length; k++) {
        spec.signal?.throwIfAborted();
        const remaining = deadline - Date.now();
        if (last !== undefined && remaining <= 0) throw last;
        const index = (this.#preferred + k) % this.#urls.length;
        const url = this.#urls[index]!;
        let result: MtlsResult;
        try {
          result = await this.#client.post(`${url}${spec.route}`, body, {
            contentType: spec.contentType ?? "application/json",
            // The last attempts before the deadline still get a fair chance.
            timeoutMs: Math.min(
              this.#retry.attemptTimeoutMs,
              Math.max(remaining, MIN_ATTEMPT_MS),
            ),
          });
        } catch (e) {
          if (!(e instanceof MtlsClientError)) throw e;
          const error = new SpikeTransportError(
            `No answer from SPIKE Nexus at ${url}: ${e.message}`,
            {
              outcomeUnknown: e.requestSent && spec.safety === "write",
              cause: e,
            },
          );
          if (
            e.kind === "unauthorized-server" ||
            (e.requestSent && spec.safety === "write")
          ) {
            throw error;
          }
          last = error;
          continue;
        }
        const { status } = result;
        if (status >= 200 && status < 300) {
          this.#preferred = index;
          return result;
        }
        const code = codeOf(result.body);
        result.body.fill(0);
        if (TRANSIENT_STATUSES.has(status)) {
          last = status === 503
            ? errorForAnswer(status, code, spec.subject, "")
            : new SpikeTransportError(
              `SPIKE Nexus at ${url} answered HTTP ${status}`,
              { outcomeUnknown: false },
            );
          continue;
        }
        throw errorForAnswer(status, code, spec.subject, this.#self());
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw last!;
      const jittered = delay * (0.75 + Math.random() * 0.5);
      await sleep(Math.min(jittered, remaining), spec.signal);
      delay = Math.min(delay * 2, this.#retry.maxDelayMs);
    }
  }

  /**
   * Sends a JSON call and parses the JSON answer with string values as
   * bytes.
   *
   * @param spec the route and how to treat failures
   * @param body the request body (a value is sent as JSON)
   * @returns the answer object; the caller wipes its byte strings
   * @throws {SpikeError} the typed outcome
   */
  async json(
    spec: CallSpec,
    body: Uint8Array | Record<string, unknown>,
  ): Promise<Record<string, ReturnType<typeof parseByteJson>>> {
    const result = await this.post(
      spec,
      body instanceof Uint8Array ? body : JSON.stringify(body),
    );
    let value;
    try {
      value = parseByteJson(result.body);
    } catch {
      throw new SpikeServerError(
        `SPIKE Nexus answered the request for ${spec.subject} with invalid JSON`,
        "data_unmarshal_failure",
        result.status,
      );
    } finally {
      result.body.fill(0);
    }
    if (
      value === null || typeof value !== "object" || Array.isArray(value) ||
      value instanceof Uint8Array
    ) {
      wipeByteJson(value);
      throw new SpikeServerError(
        `SPIKE Nexus answered the request for ${spec.subject} with an unexpected JSON shape`,
        "data_unmarshal_failure",
        result.status,
      );
    }
    const err = value.err;
    if (err instanceof Uint8Array && err.length > 0) {
      const code = new TextDecoder().decode(err);
      wipeByteJson(value);
      throw errorForAnswer(200, code, spec.subject, this.#self());
    }
    return value;
  }
}
