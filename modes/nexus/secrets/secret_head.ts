// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The sealed head of a secret path in store format 2, and the check of a
 * path's version rows against it.
 *
 * A path keeps versions `lowest..highest`, always contiguous: a put adds
 * `highest + 1`, pruning drops the lowest numbers, deletion is a mark in
 * the head. The head (one seal, bound to the path's revision) holds:
 * the created and updated times, the max versions of the last put, the
 * lowest kept version, the created and deletion time of every kept version,
 * and the values of the highest version. Each version below the highest has
 * one row with its values (one seal, bound to path and version), written
 * when the next put moves the values out of the head. So reading the
 * current version, in the common case where it is the highest, opens one
 * seal, and a write seals at most two records.
 *
 * @module
 */
import type { StoredVersions } from "../store/backend.ts";
import { IntegrityError } from "../store/integrity.ts";

/** A secret's value map. */
export type SecretValues = Record<string, string>;

/** The times of one kept version. */
export interface VersionTimes {
  /** RFC 3339 creation time. */
  readonly createdTime: string;
  /** RFC 3339 deletion time, or null while live. */
  readonly deletedTime: string | null;
}

/** The plaintext of a sealed head. */
export interface SecretHead {
  /** RFC 3339 time the path was first written. */
  readonly createdTime: string;
  /** RFC 3339 time the current version last changed. */
  readonly updatedTime: string;
  /** The max versions applied by the last put. */
  readonly maxVersions: number;
  /** The lowest kept version (from 1). */
  readonly lowest: number;
  /** Times of the kept versions `lowest..highest`, in order; never empty. */
  readonly versions: readonly VersionTimes[];
  /** The values of the highest version. */
  readonly data: SecretValues;
}

/**
 * Whether a value is a value map: an object of strings.
 *
 * @param value a decoded JSON value
 * @returns true for `{string: string}`
 */
export function isValues(value: unknown): value is SecretValues {
  return typeof value === "object" && value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === "string");
}

const isCount = (n: unknown): n is number =>
  typeof n === "number" && Number.isSafeInteger(n) && n >= 1;

function isTimes(v: unknown): v is VersionTimes {
  const t = v as VersionTimes | null;
  return typeof t === "object" && t !== null &&
    typeof t.createdTime === "string" &&
    (t.deletedTime === null || typeof t.deletedTime === "string");
}

/**
 * Checks the shape of an opened head.
 *
 * @param value the opened JSON
 * @param path the path, for the message
 * @returns the head
 * @throws {IntegrityError} when a field is missing or of the wrong type
 */
export function parseHead(value: unknown, path: string): SecretHead {
  const h = value as SecretHead | null;
  if (
    typeof h !== "object" || h === null ||
    typeof h.createdTime !== "string" || typeof h.updatedTime !== "string" ||
    !isCount(h.maxVersions) || !isCount(h.lowest) ||
    !Array.isArray(h.versions) || h.versions.length === 0 ||
    !h.versions.every(isTimes) || !isValues(h.data)
  ) {
    throw new IntegrityError(`Secret "${path}" has a malformed head`);
  }
  return h;
}

/**
 * The highest kept version.
 *
 * @param head the head
 * @returns its number
 */
export function highestOf(head: SecretHead): number {
  return head.lowest + head.versions.length - 1;
}

/**
 * The current version: the highest one not deleted.
 *
 * @param head the head
 * @returns its number, 0 when every version is deleted
 */
export function currentOf(head: SecretHead): number {
  for (let i = head.versions.length - 1; i >= 0; i--) {
    if (head.versions[i]!.deletedTime === null) return head.lowest + i;
  }
  return 0;
}

/**
 * The oldest version not deleted.
 *
 * @param head the head
 * @returns its number, 0 when every version is deleted
 */
export function oldestOf(head: SecretHead): number {
  const i = head.versions.findIndex((v) => v.deletedTime === null);
  return i < 0 ? 0 : head.lowest + i;
}

/**
 * The times of a version, when it is kept.
 *
 * @param head the head
 * @param version a version number
 * @returns its times, or undefined when it is not kept
 */
export function timesOf(
  head: SecretHead,
  version: number,
): VersionTimes | undefined {
  return version >= head.lowest
    ? head.versions[version - head.lowest]
    : undefined;
}

/**
 * Checks the version rows a path has against its head: exactly one row for
 * each of `lowest..highest - 1`. Version numbers are unique per path, so
 * the count, the lowest and the highest number settle it.
 *
 * @param path the path, for the message
 * @param head the opened head
 * @param stored what the version rows are
 * @throws {IntegrityError} naming what disagrees: a row missing (deleted),
 *   a row the head does not know (copied, duplicated or re-inserted), or
 *   rows above the head (the head rolled back under newer versions)
 */
export function checkVersionRows(
  path: string,
  head: SecretHead,
  stored: StoredVersions,
): void {
  const highest = highestOf(head);
  const count = highest - head.lowest;
  if (
    stored.count === count &&
    (count === 0 ||
      (stored.lowest === head.lowest && stored.highest === highest - 1))
  ) {
    return;
  }
  const why = stored.highest >= highest
    ? `has a version row ${stored.highest}, at or above its head's version ${highest}: the head was rolled back or a row was added`
    : stored.count < count
    ? `is missing version rows: its head keeps versions ${head.lowest} to ${highest}, the table has ${stored.count} of the ${count} rows below ${highest}`
    : `has version rows its head does not keep (copied, duplicated or re-inserted): its head keeps versions ${head.lowest} to ${highest}`;
  throw new IntegrityError(`Secret "${path}" ${why}`);
}
