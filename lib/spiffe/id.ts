// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * SPIFFE ID parsing and validation, following the SPIFFE-ID standard and
 * go-spiffe's strict rules.
 *
 * @module
 */

/** The longest SPIFFE ID, in bytes, that must be supported. */
export const MAX_SPIFFE_ID_BYTES = 2048;
/** The longest trust domain name, in bytes. */
export const MAX_TRUST_DOMAIN_BYTES = 255;

const SCHEME_PREFIX = "spiffe://";
// Whole-string tests: one regex run per name or segment, not one per
// character (a visible share of a CLI's start and of each new connection).
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]*$/;
const PATH_SEGMENT_CHARS = /^[a-zA-Z0-9._-]*$/;

/** Raised for a string that is not a valid SPIFFE ID; the message names the rule. */
export class SpiffeIdError extends Error {
  /** Creates the error with a message naming the broken rule. */
  constructor(message: string) {
    super(message);
    this.name = "SpiffeIdError";
  }
}

/** A validated SPIFFE ID. */
export interface SpiffeId {
  /** The trust domain name, e.g. `spike.ist`. */
  readonly trustDomain: string;
  /** The path, empty or starting with `/`, e.g. `/spike/nexus`. */
  readonly path: string;
  /** The whole ID, e.g. `spiffe://spike.ist/spike/nexus`. */
  readonly uri: string;
}

/**
 * Validates a trust domain name: lowercase letters, digits, `.`, `-`, `_`,
 * non-empty, at most 255 bytes.
 *
 * @param trustDomain the name to check
 * @throws {SpiffeIdError} when a rule is broken
 */
export function validateTrustDomain(trustDomain: string): void {
  if (trustDomain.length === 0) {
    throw new SpiffeIdError("Trust domain is missing");
  }
  if (new TextEncoder().encode(trustDomain).length > MAX_TRUST_DOMAIN_BYTES) {
    throw new SpiffeIdError(
      `Trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`,
    );
  }
  if (!TRUST_DOMAIN_CHARS.test(trustDomain)) {
    throw new SpiffeIdError(
      "Trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
    );
  }
}

/**
 * Validates a SPIFFE ID path: empty, or `/`-separated non-empty segments of
 * `[a-zA-Z0-9._-]`, no `.` or `..` segment, no trailing slash.
 *
 * @param path the path to check
 * @throws {SpiffeIdError} when a rule is broken
 */
export function validatePath(path: string): void {
  if (path === "") return;
  if (!path.startsWith("/")) {
    throw new SpiffeIdError("Path must have a leading slash");
  }
  const segments = path.slice(1).split("/");
  segments.forEach((segment, i) => {
    if (segment === "") {
      throw new SpiffeIdError(
        i === segments.length - 1
          ? "Path cannot have a trailing slash"
          : "Path cannot contain empty segments",
      );
    }
    if (segment === "." || segment === "..") {
      throw new SpiffeIdError("Path cannot contain dot segments");
    }
    if (!PATH_SEGMENT_CHARS.test(segment)) {
      throw new SpiffeIdError(
        "Path segment characters are limited to letters, numbers, dots, dashes, and underscores",
      );
    }
  });
}

/**
 * Parses and validates a SPIFFE ID.
 *
 * @param value the string to parse, e.g. `spiffe://spike.ist/spike/nexus`
 * @returns the validated ID
 * @throws {SpiffeIdError} with a message naming the first broken rule
 */
export function parseSpiffeId(value: string): SpiffeId {
  if (value.length === 0) throw new SpiffeIdError("SPIFFE ID is empty");
  if (new TextEncoder().encode(value).length > MAX_SPIFFE_ID_BYTES) {
    throw new SpiffeIdError(
      `SPIFFE ID is longer than ${MAX_SPIFFE_ID_BYTES} bytes`,
    );
  }
  if (!value.toLowerCase().startsWith(SCHEME_PREFIX)) {
    throw new SpiffeIdError(
      value.includes("://")
        ? "Scheme is invalid: it must be spiffe"
        : "Scheme is missing or invalid",
    );
  }
  if (!value.startsWith(SCHEME_PREFIX)) {
    throw new SpiffeIdError("Scheme is invalid: it must be lowercase spiffe");
  }
  const rest = value.slice(SCHEME_PREFIX.length);
  if (rest.includes("?")) {
    throw new SpiffeIdError("SPIFFE ID cannot contain a query");
  }
  if (rest.includes("#")) {
    throw new SpiffeIdError("SPIFFE ID cannot contain a fragment");
  }
  if (rest.includes("%")) {
    throw new SpiffeIdError("SPIFFE ID cannot contain percent-encoding");
  }
  const slash = rest.indexOf("/");
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? "" : rest.slice(slash);
  if (trustDomain.includes("@")) {
    throw new SpiffeIdError("Trust domain cannot contain user info");
  }
  if (trustDomain.includes(":")) {
    throw new SpiffeIdError("Trust domain cannot contain a port");
  }
  validateTrustDomain(trustDomain);
  validatePath(path);
  return { trustDomain, path, uri: value };
}

/**
 * Builds a SPIFFE ID from a trust domain and a path, validating both.
 *
 * @param trustDomain e.g. `spike.ist`
 * @param path e.g. `/spike/nexus`
 * @returns the validated ID
 * @throws {SpiffeIdError} when either part is invalid
 */
export function spiffeIdFromParts(trustDomain: string, path: string): SpiffeId {
  // Checked apart first: glued together, "spike.ist" + "x" reads as one trust domain.
  validateTrustDomain(trustDomain);
  validatePath(path);
  return parseSpiffeId(`${SCHEME_PREFIX}${trustDomain}${path}`);
}
