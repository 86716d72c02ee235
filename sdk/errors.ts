// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The errors of the workload SDK: one class per outcome a caller handles
 * differently, each with its `name` and the error code upstream SPIKE uses
 * for it. Messages name paths and codes, never a secret value.
 *
 * @module
 */

/**
 * The base of every SDK error.
 *
 * @example Telling SDK errors from others
 * ```ts
 * import { SpikeError, SpikeNotFoundError } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const error: unknown = new SpikeNotFoundError("Secret \"apps/db\" not found");
 * assert.ok(error instanceof SpikeError);
 * assert.equal(error.code, "api_not_found");
 * ```
 */
export class SpikeError extends Error {
  /** The error code, as upstream SPIKE names it (e.g. `api_not_found`). */
  readonly code: string;
  /** The HTTP status nexus answered with, when it answered. */
  readonly status: number | undefined;

  /**
   * Creates the error.
   *
   * @param message what went wrong, without secret values
   * @param code the error code
   * @param options the HTTP status and the cause
   */
  constructor(
    message: string,
    code: string,
    options: { status?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "SpikeError";
    this.code = code;
    this.status = options.status;
  }
}

/**
 * The secret, or the asked version of it, does not exist (HTTP 404,
 * `api_not_found`). Never retried.
 *
 * @example Reading a secret that may be missing
 * ```ts
 * import { SpikeNotFoundError } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new SpikeNotFoundError("Secret \"apps/db\" not found");
 * assert.equal(error.name, "SpikeNotFoundError");
 * assert.equal(error.status, 404);
 * ```
 */
export class SpikeNotFoundError extends SpikeError {
  /**
   * Creates the error.
   *
   * @param message what was not found
   * @param code the error code; default `api_not_found`
   */
  constructor(message: string, code = "api_not_found") {
    super(message, code, { status: 404 });
    this.name = "SpikeNotFoundError";
  }
}

/**
 * Nexus refused this workload's SPIFFE ID for the operation (HTTP 401 or
 * 403, `access_unauthorized`): no policy grants it. Never retried.
 *
 * @example
 * ```ts
 * import { SpikeDeniedError } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new SpikeDeniedError("Denied", 401);
 * assert.equal(error.name, "SpikeDeniedError");
 * assert.equal(error.code, "access_unauthorized");
 * ```
 */
export class SpikeDeniedError extends SpikeError {
  /**
   * Creates the error.
   *
   * @param message what was refused, naming this workload's SPIFFE ID
   * @param status the HTTP status (401 or 403)
   * @param code the error code; default `access_unauthorized`
   */
  constructor(message: string, status = 401, code = "access_unauthorized") {
    super(message, code, { status });
    this.name = "SpikeDeniedError";
  }
}

/**
 * Nexus is locked: it is waiting for its root key (HTTP 503,
 * `state_not_ready`). Retried until the call's deadline; thrown when the
 * deadline passes while nexus is still locked.
 *
 * @example
 * ```ts
 * import { SpikeLockedError } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new SpikeLockedError("Locked");
 * assert.equal(error.code, "state_not_ready");
 * assert.equal(error.status, 503);
 * ```
 */
export class SpikeLockedError extends SpikeError {
  /**
   * Creates the error.
   *
   * @param message what was locked
   */
  constructor(message: string) {
    super(message, "state_not_ready", { status: 503 });
    this.name = "SpikeLockedError";
  }
}

/**
 * A compare-and-set write found another current version (HTTP 409,
 * `api_conflict`, an extension of this nexus). Never retried: read the
 * secret again and decide.
 *
 * @example
 * ```ts
 * import { SpikeConflictError } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new SpikeConflictError("Conflict");
 * assert.equal(error.name, "SpikeConflictError");
 * assert.equal(error.status, 409);
 * ```
 */
export class SpikeConflictError extends SpikeError {
  /**
   * Creates the error.
   *
   * @param message what conflicted
   */
  constructor(message: string) {
    super(message, "api_conflict", { status: 409 });
    this.name = "SpikeConflictError";
  }
}

/**
 * The request is invalid: refused by nexus (HTTP 400 `api_bad_request`,
 * 413 `api_entity_too_large`) or, before sending, by the SDK
 * (`data_invalid_input`). Never retried.
 *
 * @example
 * ```ts
 * import { SpikeBadRequestError } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new SpikeBadRequestError("Bad path");
 * assert.equal(error.code, "api_bad_request");
 * ```
 */
export class SpikeBadRequestError extends SpikeError {
  /**
   * Creates the error.
   *
   * @param message what is wrong with the request (no secret values)
   * @param code the error code; default `api_bad_request`
   * @param status the HTTP status, when nexus answered; default 400 for
   *   `api_bad_request`, none otherwise
   */
  constructor(
    message: string,
    code = "api_bad_request",
    status: number | undefined = code === "api_bad_request" ? 400 : undefined,
  ) {
    super(message, code, status === undefined ? {} : { status });
    this.name = "SpikeBadRequestError";
  }
}

/**
 * No answer from any nexus: refused or reset connections, timeouts, TLS
 * failures, or a server whose SPIFFE ID is not a nexus
 * (`net_peer_connection`). Retried until the deadline where that is safe.
 *
 * @example
 * ```ts
 * import { SpikeTransportError } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new SpikeTransportError("Unreachable", { outcomeUnknown: false });
 * assert.equal(error.code, "net_peer_connection");
 * assert.equal(error.outcomeUnknown, false);
 * ```
 */
export class SpikeTransportError extends SpikeError {
  /**
   * True when a write may have been applied although no answer came (the
   * connection broke after the request was sent); the SDK does not retry
   * such a write, since that could apply it twice.
   */
  readonly outcomeUnknown: boolean;

  /**
   * Creates the error.
   *
   * @param message what failed, naming the nexus URL
   * @param options whether a write may have been applied, and the cause
   */
  constructor(
    message: string,
    options: { outcomeUnknown: boolean; cause?: unknown },
  ) {
    super(message, "net_peer_connection", { cause: options.cause });
    this.name = "SpikeTransportError";
    this.outcomeUnknown = options.outcomeUnknown;
  }
}

/**
 * Nexus failed to handle the request (HTTP 500 `api_internal_error`, 507
 * `store_write_failed`, or an unexpected status or body). Not retried.
 *
 * @example
 * ```ts
 * import { SpikeServerError } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new SpikeServerError("Failed", "api_internal_error", 500);
 * assert.equal(error.name, "SpikeServerError");
 * ```
 */
export class SpikeServerError extends SpikeError {
  /**
   * Creates the error.
   *
   * @param message what failed
   * @param code the error code nexus sent, or `api_internal_error`
   * @param status the HTTP status
   */
  constructor(message: string, code: string, status: number) {
    super(message, code, { status });
    this.name = "SpikeServerError";
  }
}

/**
 * The SDK could not start: an invalid option or environment variable, or
 * no X.509-SVID from the configured source (codes `data_invalid_input`,
 * `spiffe_failed_to_create_x509_source`).
 *
 * @example
 * ```ts
 * import { SpikeConfigError } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new SpikeConfigError("Bad URL");
 * assert.equal(error.code, "data_invalid_input");
 * ```
 */
export class SpikeConfigError extends SpikeError {
  /**
   * Creates the error.
   *
   * @param message what is wrong
   * @param code the error code; default `data_invalid_input`
   * @param cause the underlying error
   */
  constructor(message: string, code = "data_invalid_input", cause?: unknown) {
    super(message, code, { cause });
    this.name = "SpikeConfigError";
  }
}
