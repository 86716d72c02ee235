// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Small helpers every nexus route shares: JSON responses, error responses
 * (the code, and a reason for 400), and reading a JSON object body.
 *
 * @module
 */
import type { MtlsResponse } from "../../lib/mtls/server.ts";
import {
  ApiError,
  errorBody,
  ErrorCode,
  type ErrorCodeValue,
  STATUS_OF,
} from "../../lib/wire/errors.ts";
import {
  JsonBytesError,
  type JsonValue,
  parseJsonBytes,
} from "../../lib/wire/json_bytes.ts";
import { parseJsonStrict } from "../../lib/wire/json_strict.ts";
import { ValidationError } from "../../lib/wire/validate.ts";
import type { SpiffeId } from "../../lib/spiffe/id.ts";
import { authorize, type Operation } from "./policy/authorize.ts";
import type { PolicyEngine } from "./policy/engine.ts";

/** A JSON object as read from a request. */
export type JsonObject = { [key: string]: JsonValue };

const JSON_HEADERS = {
  "content-type": "application/json",
  "cache-control": "no-store, no-cache, must-revalidate, private",
  pragma: "no-cache",
  expires: "0",
};

/**
 * A JSON response.
 *
 * @param status HTTP status
 * @param body a value for JSON.stringify, or ready bytes
 * @returns the response
 */
export function jsonResponse(
  status: number,
  body: unknown,
): MtlsResponse {
  return {
    status,
    headers: { ...JSON_HEADERS },
    body: body instanceof Uint8Array ? body : JSON.stringify(body),
  };
}

/**
 * An error response: the code, and for a 400 the reason.
 *
 * @param code the wire code
 * @param reason why the request is invalid (400 only; never a value)
 * @returns the response
 */
export function errorResponse(
  code: ErrorCodeValue,
  reason?: string,
): MtlsResponse {
  return jsonResponse(STATUS_OF[code], errorBody(code, reason));
}

/**
 * Parses a request body that must be a JSON object, strictly (no duplicate
 * key, at most 32 levels, valid UTF-8). A body that carries secret values
 * is read byte by byte, so each value becomes one string of its own and no
 * string ever holds the whole body; any other body is read by `JSON.parse`
 * under the same rules, which is many times faster on a large body.
 *
 * @param body the raw body
 * @param options `carriesSecrets`: the body holds secret values (a secret
 *   put, a cipher plaintext)
 * @returns the object
 * @throws {ApiError} 400 for anything else
 */
export function readJsonObject(
  body: Uint8Array,
  options: { carriesSecrets?: boolean } = {},
): JsonObject {
  let value: JsonValue;
  try {
    value = options.carriesSecrets
      ? parseJsonBytes(body)
      : parseJsonStrict(body);
  } catch (e) {
    throw new ApiError(
      ErrorCode.BadRequest,
      e instanceof JsonBytesError ? e.message : "Body must be JSON",
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ApiError(ErrorCode.BadRequest, "Body must be a JSON object");
  }
  return value;
}

/**
 * Runs an input validator; a broken rule becomes a 400 whose log message
 * names the field and the rule (validators never repeat the value).
 *
 * @param check the validation to run
 * @returns what the validator returns
 * @throws {ApiError} 400 for a {@linkcode ValidationError}
 */
export function validInput<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof ValidationError) {
      throw new ApiError(ErrorCode.BadRequest, e.message);
    }
    throw e;
  }
}

/**
 * Refuses the request unless the caller may perform the operation.
 *
 * @param peerId the caller
 * @param op the operation
 * @param path the secret path for secret operations, else undefined
 * @param engine the policies
 * @throws {ApiError} 401 when not allowed
 */
export function requireAllowed(
  peerId: SpiffeId,
  op: Operation,
  path: string | undefined,
  engine: PolicyEngine,
): void {
  if (!authorize(peerId, op, path, engine)) {
    throw new ApiError(
      ErrorCode.Unauthorized,
      `${op} refused for ${peerId.uri}`,
    );
  }
}
