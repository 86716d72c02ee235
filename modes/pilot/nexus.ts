// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Pilot's connection to SPIKE Nexus: this workload's SVID, an mTLS client
 * that only talks to a nexus identity, and the mapping of every failure
 * (HTTP status, `err` code, network) to one sentence and an exit code.
 *
 * @module
 */
import {
  ConfigError,
  envPositiveDuration,
  envString,
} from "../../lib/config/env.ts";
import { formatDuration } from "../../lib/config/duration.ts";
import { checkSharedConfig } from "../../lib/config/shared.ts";
import { withWaitNote } from "../../lib/wait_note.ts";
import type { MtlsClient, MtlsResult } from "../../lib/mtls/client.ts";
import type { SpiffeId } from "../../lib/spiffe/id.ts";
import {
  describeTrustRoots,
  hasRole,
  type Role,
  ROLE_PATHS,
  roleId,
} from "../../lib/spiffe/roles.ts";
import type { SvidSource } from "../../lib/spiffe/source.ts";
import { openSvidSource } from "../../lib/spiffe/open_source.ts";
import { ErrorCode } from "../../lib/wire/errors.ts";
import { permissionErrorOf } from "../../lib/permission_error.ts";
import { CliError, lowerFirst, usageError } from "./cli_error.ts";
import { ExitCode } from "./exit_codes.ts";

/** Where pilot finds nexus when `SPIKE_NEXUS_API_URL` is unset. */
export const DEFAULT_NEXUS_URL = "https://localhost:8553";

/** How to word failures of one call; every field is optional. */
export interface CallContext {
  /** What the call is about, e.g. `Secret "db/creds"`; 404 says "<subject> not found". */
  subject?: string;
  /** The whole sentence for 404, when "<subject> not found" does not fit. */
  notFound?: string;
  /** The sentence for 409. */
  conflict?: string;
  /** What was refused, for 400; nexus's reason (or the status) follows. */
  badRequest?: string;
}

/** The largest answer pilot reads from most routes (status, recover, writes). */
export const SMALL_ANSWER_LIMIT = 1024 * 1024;
/**
 * The largest answer of the routes that return stored data: secret values
 * (up to nexus's request limit, and JSON escaping can grow them), lists of
 * paths and policies, and cipher results.
 */
export const DATA_ANSWER_LIMIT = 64 * 1024 * 1024;

const DATA_ROUTES = new Set([
  "/v1/store/secrets?action=get",
  "/v1/store/secrets?action=list",
  "/v1/store/secrets/metadata?action=get",
  "/v1/acl/policy?action=list",
  "/v1/cipher/encrypt",
  "/v1/cipher/decrypt",
]);

/**
 * The response size limit of a route: a hostile or broken server cannot
 * make pilot buffer more than this.
 *
 * @param route path and query, as pilot sends it
 * @returns the limit in bytes
 */
export function answerLimit(route: string): number {
  return DATA_ROUTES.has(route) ? DATA_ANSWER_LIMIT : SMALL_ANSWER_LIMIT;
}

/** The message for a locked nexus (HTTP 503). */
export const LOCKED_MESSAGE =
  "SPIKE Nexus is locked: it is waiting for its root key (from keepers, or `spike pilot operator restore`)";

/**
 * The nexus base URL from `SPIKE_NEXUS_API_URL`, without a trailing slash.
 *
 * @returns e.g. `https://localhost:8553`
 * @throws {CliError} (exit code 2) when it is not an https URL
 */
export function nexusBaseUrl(): string {
  const raw = envString("SPIKE_NEXUS_API_URL", DEFAULT_NEXUS_URL);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw usageError(`SPIKE_NEXUS_API_URL is not a URL: "${raw}"`);
  }
  if (url.protocol !== "https:") {
    throw usageError(`SPIKE_NEXUS_API_URL must be an https URL, got "${raw}"`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw usageError(
      `SPIKE_NEXUS_API_URL cannot have a query or fragment, got "${raw}"`,
    );
  }
  return url.href.replace(/\/+$/, "");
}

/** The `err` code and the `reason` of an error body, when it has them. */
function errorFields(
  body: Uint8Array,
): { code: string | undefined; reason: string | undefined } {
  const text = (v: unknown) =>
    typeof v === "string" && v !== "" ? v : undefined;
  try {
    const value = JSON.parse(new TextDecoder().decode(body));
    return { code: text(value?.err), reason: text(value?.reason) };
  } catch {
    return { code: undefined, reason: undefined };
  }
}

/**
 * A server's reason as one printable line: control characters become
 * spaces and the length is capped, so a reason cannot rewrite the terminal.
 */
function printableReason(reason: string): string {
  // deno-lint-ignore no-control-regex
  const line = reason.replace(/[\x00-\x1f\x7f-\x9f]+/g, " ").trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/**
 * The error for a nexus answer that is not a success.
 *
 * @param status the HTTP status
 * @param code the `err` code of the body, if any
 * @param context how to word this call's failures
 * @param self this workload's SPIFFE ID, for 401
 * @param reason the `reason` of a 400 body, if any
 * @returns the error to throw
 */
export function errorForStatus(
  status: number,
  code: string | undefined,
  context: CallContext,
  self: string,
  reason?: string,
): CliError {
  const suffix = code === undefined
    ? `HTTP ${status}`
    : `HTTP ${status}, ${code}`;
  switch (status) {
    case 400: {
      const what = context.badRequest ??
        "SPIKE Nexus refused the request as invalid";
      return new CliError(
        reason === undefined
          ? `${what} (${suffix})`
          : `${what}: ${lowerFirst(printableReason(reason))}`,
        ExitCode.Usage,
      );
    }
    case 401:
    case 403:
      return new CliError(
        `SPIKE Nexus refused this identity (${self}): it has no permission for this operation`,
        ExitCode.Unauthorized,
      );
    case 404:
      return new CliError(
        context.notFound ?? `${context.subject ?? "The resource"} not found`,
        ExitCode.NotFound,
      );
    case 409:
      return new CliError(
        context.conflict ??
          `SPIKE Nexus refused the request: it conflicts with the current state (${suffix})`,
        ExitCode.Conflict,
      );
    case 413:
      return new CliError(
        "The request is larger than SPIKE Nexus accepts",
        ExitCode.Usage,
      );
    case 503:
      return new CliError(LOCKED_MESSAGE, ExitCode.NotReady);
    case 500:
      if (code === ErrorCode.Integrity) {
        return new CliError(
          `SPIKE Nexus found its stored data altered or damaged and refused to serve it (${suffix}); its log names what failed the check`,
          ExitCode.Failure,
        );
      }
      return new CliError(
        `SPIKE Nexus failed to handle the request (${suffix})`,
        ExitCode.Failure,
      );
    case 507:
      return new CliError(
        "SPIKE Nexus could not save the change: its store is not writable",
        ExitCode.Failure,
      );
    default:
      return new CliError(
        status >= 500
          ? `SPIKE Nexus failed to handle the request (${suffix})`
          : `SPIKE Nexus answered with an unexpected status (${suffix})`,
        ExitCode.Failure,
      );
  }
}

/** A code sent with status 200 maps as if it had its own status. */
const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  [ErrorCode.BadRequest]: 400,
  [ErrorCode.Unauthorized]: 401,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.TooLarge]: 413,
  [ErrorCode.NotReady]: 503,
  [ErrorCode.Internal]: 500,
  [ErrorCode.Integrity]: 500,
};

/** An open connection to nexus; close it (or `using`) when done. */
export class NexusSession implements Disposable {
  /** The nexus base URL. */
  readonly baseUrl: string;
  /** This workload's SPIFFE ID. */
  readonly id: SpiffeId;
  readonly #source: SvidSource;
  readonly #client: MtlsClient;
  readonly #timeoutMs: number;

  /**
   * Wraps an open source and client; {@linkcode openNexus} builds one.
   *
   * @param baseUrl the nexus URL
   * @param source this workload's SVID source
   * @param client the mTLS client
   * @param timeoutMs the client's time limit per call, for the wait note
   */
  constructor(
    baseUrl: string,
    source: SvidSource,
    client: MtlsClient,
    timeoutMs: number,
  ) {
    this.baseUrl = baseUrl;
    this.#source = source;
    this.#client = client;
    this.#timeoutMs = timeoutMs;
    this.id = source.current().id;
  }

  /**
   * Refuses, before any call, an identity without `role` (nexus checks
   * again).
   *
   * @param role the role the command needs
   * @param command the command, for the message
   * @throws {CliError} (exit code 4) naming the needed and the actual ID
   */
  requireRole(role: Role, command: string): void {
    if (!hasRole(this.id, role)) {
      throw new CliError(
        `The ${command} command needs a SPIFFE ID of ${
          roleId(role)
        }; this SVID is ${this.id.uri}`,
        ExitCode.Unauthorized,
      );
    }
  }

  /**
   * POSTs a body and returns the successful response.
   *
   * @param route path and query, e.g. `/v1/store/secrets?action=get`
   * @param body the request body; the caller zeroes secret bodies
   * @param context how to word failures
   * @param contentType default `application/json`
   * @returns the 2xx response
   * @throws {CliError} for every failure, with its exit code
   */
  async post(
    route: string,
    body: Uint8Array | string,
    context: CallContext = {},
    contentType = "application/json",
  ): Promise<MtlsResult> {
    let result: MtlsResult;
    try {
      result = await withWaitNote(
        this.#client.post(`${this.baseUrl}${route}`, body, {
          contentType,
          maxResponseBytes: answerLimit(route),
        }),
        `Waiting for SPIKE Nexus at ${this.baseUrl} to answer (up to ${
          formatDuration(this.#timeoutMs)
        }, SPIKE_HTTP_CLIENT_TIMEOUT)`,
      );
    } catch (e) {
      // A connection the launcher did not grant is no network failure.
      const denied = permissionErrorOf(e);
      if (denied !== undefined) throw denied;
      const { MtlsClientError } = await import("../../lib/mtls/client.ts");
      if (e instanceof MtlsClientError && e.kind === "too-large") {
        throw new CliError(
          `SPIKE Nexus at ${this.baseUrl} answered more than ${
            answerLimit(route)
          } bytes; the answer was refused`,
        );
      }
      if (e instanceof MtlsClientError) {
        // A wrong trust root is the usual cause: say which ones apply.
        const hint = e.kind === "unauthorized-server"
          ? `: nexus must be ${
            ROLE_PATHS.nexus.slice(1)
          } in a trust domain of ${describeTrustRoots("nexus")}`
          : "";
        throw new CliError(
          `Cannot reach SPIKE Nexus at ${this.baseUrl}: ${
            lowerFirst(e.message)
          }${hint}`,
          ExitCode.Unreachable,
        );
      }
      throw e;
    }
    if (result.status < 200 || result.status > 299) {
      const { code, reason } = errorFields(result.body);
      result.body.fill(0);
      throw errorForStatus(result.status, code, context, this.id.uri, reason);
    }
    return result;
  }

  /**
   * POSTs a body and hands a successful answer to `sink` chunk by chunk as
   * it arrives (a backup); the time limit then applies to each wait for
   * more, not to the whole answer.
   *
   * @param route path and query
   * @param body the request body
   * @param sink takes each chunk; the next is read once it settles
   * @param context how to word failures
   * @throws {CliError} for every failure of the call; a sink's own error
   *   as it is
   */
  async stream(
    route: string,
    body: string,
    sink: (chunk: Uint8Array) => Promise<void>,
    context: CallContext = {},
  ): Promise<void> {
    let result: MtlsResult;
    let started = false;
    try {
      result = await this.#client.post(`${this.baseUrl}${route}`, body, {
        sink: (chunk) => {
          started = true;
          return sink(chunk);
        },
      });
    } catch (e) {
      const { MtlsClientError } = await import("../../lib/mtls/client.ts");
      if (e instanceof MtlsClientError) {
        throw new CliError(
          started
            ? `The answer of SPIKE Nexus at ${this.baseUrl} broke off: ${
              lowerFirst(e.message)
            }`
            : `Cannot reach SPIKE Nexus at ${this.baseUrl}: ${
              lowerFirst(e.message)
            }`,
          ExitCode.Unreachable,
        );
      }
      throw e;
    }
    if (result.status < 200 || result.status > 299) {
      const { code, reason } = errorFields(result.body);
      throw errorForStatus(result.status, code, context, this.id.uri, reason);
    }
  }

  /**
   * POSTs a JSON request and parses the JSON answer. The answer must not
   * carry shards (those stay bytes: use {@linkcode post}).
   *
   * @param route path and query
   * @param payload the request value, or the request already encoded as
   *   JSON bytes (shard-bearing requests; the caller zeroes them)
   * @param context how to word failures
   * @returns the answer object
   * @throws {CliError} for every failure, with its exit code
   */
  async json(
    route: string,
    payload: unknown,
    context: CallContext = {},
  ): Promise<Record<string, unknown>> {
    const { body } = await this.post(
      route,
      payload instanceof Uint8Array ? payload : JSON.stringify(payload),
      context,
    );
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder().decode(body));
    } catch {
      throw new CliError("SPIKE Nexus answered with invalid JSON");
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new CliError("SPIKE Nexus answered with an unexpected JSON shape");
    }
    const record = value as Record<string, unknown>;
    // Upstream may report an error with status 200 and an `err` field.
    if (typeof record.err === "string" && record.err !== "") {
      throw errorForStatus(
        STATUS_OF_CODE[record.err] ?? 500,
        record.err,
        context,
        this.id.uri,
        typeof record.reason === "string" ? record.reason : undefined,
      );
    }
    return record;
  }

  /** Drops the connection and stops the SVID source. */
  close(): void {
    this.#client.close();
    this.#source.close();
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

async function openSource(): Promise<SvidSource> {
  try {
    // A short-lived CLI needs no file watcher, and an operator is better
    // told at once that the agent's socket is missing than after 30 s.
    return await openSvidSource({ watch: false, missingSocket: "fail" });
  } catch (e) {
    if (e instanceof ConfigError) throw usageError(e.message);
    const denied = permissionErrorOf(e);
    if (denied !== undefined) throw denied;
    const reason = e instanceof Error ? e.message : String(e);
    throw new CliError(
      `Cannot get this workload's SVID: ${lowerFirst(reason.split("\n")[0]!)}`,
    );
  }
}

/**
 * Checks, before any connection, the variables a call to nexus reads
 * later or lazily: log level, trust roots, SVID source, and
 * `SPIKE_HTTP_CLIENT_TIMEOUT` (above zero: zero would fail every call).
 *
 * @returns the time limit per call, from `SPIKE_HTTP_CLIENT_TIMEOUT`
 * @throws {CliError} (exit code 2) naming the first invalid variable
 */
export function checkPilotConfig(): number {
  try {
    checkSharedConfig();
    return envPositiveDuration("SPIKE_HTTP_CLIENT_TIMEOUT", 60_000);
  } catch (e) {
    if (e instanceof ConfigError) throw usageError(e.message);
    throw e;
  }
}

/**
 * Opens this workload's SVID source and an mTLS client that accepts only a
 * nexus identity.
 *
 * @returns the session; the caller closes it
 * @throws {CliError} when the URL or another variable is invalid (2) or no
 *   SVID is available (1)
 */
export async function openNexus(): Promise<NexusSession> {
  const baseUrl = nexusBaseUrl();
  const timeoutMs = checkPilotConfig();
  const source = await openSource();
  try {
    const { createMtlsClient } = await import("../../lib/mtls/client.ts");
    const client = createMtlsClient({
      source,
      authorizeServer: (id) => hasRole(id, "nexus"),
      timeoutMs,
    });
    return new NexusSession(baseUrl, source, client, timeoutMs);
  } catch (e) {
    source.close();
    if (e instanceof ConfigError) throw usageError(e.message);
    throw e;
  }
}

/**
 * Runs `fn` with an open nexus session and closes it afterwards.
 *
 * @param fn the work
 * @returns what `fn` returns
 */
export async function withNexus<T>(
  fn: (nexus: NexusSession) => Promise<T>,
): Promise<T> {
  using nexus = await openNexus();
  return await fn(nexus);
}
