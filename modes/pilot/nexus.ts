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
import { checkSharedConfig } from "../../lib/config/shared.ts";
import type { MtlsClient, MtlsResult } from "../../lib/mtls/client.ts";
import type { SpiffeId } from "../../lib/spiffe/id.ts";
import { hasRole, type Role, roleId } from "../../lib/spiffe/roles.ts";
import type { SvidSource } from "../../lib/spiffe/source.ts";
import { openSvidSource } from "../../lib/spiffe/open_source.ts";
import { ErrorCode } from "../../lib/wire/errors.ts";
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
  /** The sentence for 400. */
  badRequest?: string;
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

function errCode(body: Uint8Array): string | undefined {
  try {
    const value = JSON.parse(new TextDecoder().decode(body));
    return typeof value?.err === "string" && value.err !== ""
      ? value.err
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The error for a nexus answer that is not a success.
 *
 * @param status the HTTP status
 * @param code the `err` code of the body, if any
 * @param context how to word this call's failures
 * @param self this workload's SPIFFE ID, for 401
 * @returns the error to throw
 */
export function errorForStatus(
  status: number,
  code: string | undefined,
  context: CallContext,
  self: string,
): CliError {
  const suffix = code === undefined
    ? `HTTP ${status}`
    : `HTTP ${status}, ${code}`;
  switch (status) {
    case 400:
      return new CliError(
        context.badRequest ??
          `SPIKE Nexus refused the request as invalid (${suffix})`,
        ExitCode.Usage,
      );
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

  /** Wraps an open source and client; {@linkcode openNexus} builds one. */
  constructor(baseUrl: string, source: SvidSource, client: MtlsClient) {
    this.baseUrl = baseUrl;
    this.#source = source;
    this.#client = client;
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
      result = await this.#client.post(`${this.baseUrl}${route}`, body, {
        contentType,
      });
    } catch (e) {
      const { MtlsClientError } = await import("../../lib/mtls/client.ts");
      if (e instanceof MtlsClientError) {
        throw new CliError(
          `Cannot reach SPIKE Nexus at ${this.baseUrl}: ${
            lowerFirst(e.message)
          }`,
          ExitCode.Unreachable,
        );
      }
      throw e;
    }
    if (result.status < 200 || result.status > 299) {
      const code = errCode(result.body);
      result.body.fill(0);
      throw errorForStatus(result.status, code, context, this.id.uri);
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
      const code = errCode(result.body);
      throw errorForStatus(result.status, code, context, this.id.uri);
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
    // A short-lived CLI needs no file watcher.
    return await openSvidSource({ watch: false });
  } catch (e) {
    if (e instanceof ConfigError) throw usageError(e.message);
    if (e instanceof Deno.errors.NotCapable) throw e;
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
 * @throws {CliError} (exit code 2) naming the first invalid variable
 */
export function checkPilotConfig(): void {
  try {
    checkSharedConfig();
    envPositiveDuration("SPIKE_HTTP_CLIENT_TIMEOUT", 60_000);
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
  checkPilotConfig();
  const source = await openSource();
  try {
    const { createMtlsClient } = await import("../../lib/mtls/client.ts");
    const client = createMtlsClient({
      source,
      authorizeServer: (id) => hasRole(id, "nexus"),
    });
    return new NexusSession(baseUrl, source, client);
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
