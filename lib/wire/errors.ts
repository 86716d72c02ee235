// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Error codes carried in the `err` field of responses, exactly as upstream
 * SPIKE sends them, and the HTTP status each one goes with.
 *
 * @module
 */

/** The `err` codes SPIKE puts on the wire. */
export const ErrorCode = {
  BadRequest: "api_bad_request",
  Unauthorized: "access_unauthorized",
  NotFound: "api_not_found",
  Internal: "api_internal_error",
  NotReady: "state_not_ready",
  /** Compare-and-set mismatch or restore on an unlocked nexus (beyond upstream). */
  Conflict: "api_conflict",
  /** Request body over the limit (beyond upstream). */
  TooLarge: "api_entity_too_large",
  /** Method other than POST. */
  MethodNotAllowed: "api_method_not_allowed",
  /** The store could not persist a write (disk full, read-only). */
  StoreUnavailable: "store_write_failed",
  /**
   * Stored data failed its integrity check (a row altered, removed, copied
   * or rolled back); upstream's internal `state_integrity_check`, which its
   * routes answer as a 500.
   */
  Integrity: "state_integrity_check",
} as const;

/** One of the {@linkcode ErrorCode} values. */
export type ErrorCodeValue = typeof ErrorCode[keyof typeof ErrorCode];

/** The HTTP status for each code. */
export const STATUS_OF: Readonly<Record<ErrorCodeValue, number>> = {
  [ErrorCode.BadRequest]: 400,
  [ErrorCode.Unauthorized]: 401,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.Internal]: 500,
  [ErrorCode.NotReady]: 503,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.TooLarge]: 413,
  [ErrorCode.MethodNotAllowed]: 405,
  [ErrorCode.StoreUnavailable]: 507,
  [ErrorCode.Integrity]: 500,
};

/**
 * The body of an error response: upstream's `err` code, and for 400 a
 * `reason` sentence beyond upstream (a bare `api_bad_request` leaves the
 * caller guessing which rule it broke). Reasons name fields and rules,
 * never a value.
 *
 * @param code the wire code
 * @param reason why the request is invalid; sent only with a 400
 * @returns the body object
 */
export function errorBody(
  code: ErrorCodeValue,
  reason?: string,
): { err: ErrorCodeValue; reason?: string } {
  return STATUS_OF[code] === 400 && reason !== undefined
    ? { err: code, reason }
    : { err: code };
}

/**
 * An error that a route turns into a response: status from the code, body
 * `{"err": code}`. The message goes to the server log, and for a 400 also
 * to the caller as `reason` (see {@linkcode errorBody}): it must never carry
 * secret material.
 */
export class ApiError extends Error {
  /** The wire code. */
  readonly code: ErrorCodeValue;
  /** Creates the error. */
  constructor(code: ErrorCodeValue, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ApiError";
    this.code = code;
  }
  /** The HTTP status for this error. */
  get status(): number {
    return STATUS_OF[this.code];
  }
}
