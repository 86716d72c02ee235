// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The page fields of the list requests (secrets and policies): `prefix`,
 * `after` and `limit`, all optional. A request with none of them keeps
 * upstream SPIKE's behaviour: every key in one answer, no cursor.
 *
 * Answers carry `next`, the key to send as `after` for the following page,
 * and leave it out on the last page. Pages are keyset pages in code point
 * order: a key written between two pages appears in a later page when it
 * sorts after the cursor, and never twice.
 *
 * @module
 */
import { MAX_PATH_LENGTH, ValidationError } from "./validate.ts";

/** The most keys one page holds; a larger `limit` is cut to this. */
export const MAX_LIST_PAGE = 1000;
/** The page size when `prefix` or `after` is given without `limit`. */
export const DEFAULT_LIST_PAGE = 100;

/** A validated page request. */
export interface ListPageRequest {
  /** Only keys that start with this ("" for all). */
  readonly prefix: string;
  /** Only keys after this one ("" from the start). */
  readonly after: string;
  /** At most this many keys, 1 to {@linkcode MAX_LIST_PAGE}. */
  readonly limit: number;
}

// Keys (paths and policy names) are printable ASCII; a prefix or cursor
// with anything else could match nothing and would break the range scan.
const PRINTABLE = /^[\x20-\x7e]*$/;

function cursor(value: unknown, field: string): string {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") {
    throw new ValidationError(field, `List ${field} must be a string`);
  }
  if (value.length > MAX_PATH_LENGTH || !PRINTABLE.test(value)) {
    throw new ValidationError(
      field,
      `List ${field} must be at most ${MAX_PATH_LENGTH} printable ASCII characters`,
    );
  }
  return value;
}

/**
 * Reads the page fields of a list request.
 *
 * @param request the parsed request body
 * @returns the page, or undefined when none of the fields is given (JSON
 *   null counts as not given)
 * @throws {ValidationError} for a field of the wrong type, a prefix or
 *   cursor that is too long or not printable ASCII, or a limit that is not
 *   a whole number from 1
 */
export function validateListPage(
  request: { readonly [key: string]: unknown },
): ListPageRequest | undefined {
  const given = (k: string) => request[k] !== undefined && request[k] !== null;
  if (!given("prefix") && !given("after") && !given("limit")) {
    return undefined;
  }
  const limit = request.limit ?? DEFAULT_LIST_PAGE;
  if (typeof limit !== "number" || !Number.isSafeInteger(limit) || limit < 1) {
    throw new ValidationError(
      "limit",
      "List limit must be a whole number from 1",
    );
  }
  return {
    prefix: cursor(request.prefix, "prefix"),
    after: cursor(request.after, "after"),
    limit: Math.min(limit, MAX_LIST_PAGE),
  };
}
