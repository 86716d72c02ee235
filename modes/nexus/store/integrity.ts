// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The error for stored data that fails its integrity check.
 *
 * @module
 */
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";

/**
 * Stored data was altered, removed, copied or rolled back: a sealed record
 * that does not open where it is read, or a plaintext column that disagrees
 * with the sealed record it is checked against. The client gets a 500 with
 * `state_integrity_check` and nothing else; the message (for the operator's
 * log) names the path or policy and the broken rule, never a value.
 */
export class IntegrityError extends ApiError {
  /** Creates the error. */
  constructor(message: string) {
    super(ErrorCode.Integrity, message);
    this.name = "IntegrityError";
  }
}
