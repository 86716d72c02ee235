// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Keyset listing of keys (secret paths, policy names): pages in code point
 * order that start after a cursor, never at an offset, optionally narrowed
 * to what a caller may see.
 *
 * A caller's scope is a set of literal prefixes (every key it may see
 * starts with one of them) and a test per key. Only the ranges of those
 * prefixes are read, so a policy like `tenants/acme/.*` lists from the
 * `tenants/acme/` range of the index instead of the whole table; a policy
 * whose pattern has no literal prefix (`.*`, `(a|b)/x`) needs the whole
 * range. The cursor handed back is the last key returned, never a key the
 * caller may not see.
 *
 * @module
 */
import { compareCodePoints, type KeyRange } from "./backend.ts";

/** What a caller may see of a listing. */
export interface ListScope {
  /** Every visible key starts with one of these ("" covers everything). */
  readonly prefixes: readonly string[];
  /** Whether the caller may see this key. */
  allows(key: string): boolean;
}

/** One page request; an absent limit lists everything. */
export interface ListPage {
  /** Only keys starting with this. */
  readonly prefix: string;
  /** Only keys after this cursor (exclusive); "" from the start. */
  readonly after: string;
  /** At most this many keys, or all when undefined. */
  readonly limit: number | undefined;
}

/** One page of keys. */
export interface ListResult {
  /** The keys, by code point ascending. */
  readonly keys: string[];
  /** The cursor of the next page (the last key here); absent at the end. */
  readonly next?: string;
}

/**
 * The keys of a sorted array that fall in `range`, by binary search: the
 * keyset read of an in-memory index.
 *
 * @param sorted keys by code point ascending
 * @param range prefix, cursor and limit
 * @returns the keys in range, in order
 */
export function keysInRange(
  sorted: readonly string[],
  range: KeyRange,
): string[] {
  const prefix = range.prefix ?? "";
  const after = range.after ?? "";
  const limit = range.limit ?? Infinity;
  const out: string[] = [];
  let i = compareCodePoints(after, prefix) < 0
    ? lowerBound(sorted, prefix, false)
    : lowerBound(sorted, after, true);
  for (; i < sorted.length && out.length < limit; i++) {
    const key = sorted[i]!;
    if (!key.startsWith(prefix)) break;
    out.push(key);
  }
  return out;
}

/**
 * The index of the first key of `sorted` above `key` (or at it, unless
 * `exclusive`): where `key` would be inserted.
 *
 * @param sorted keys by code point ascending
 * @param key the key to place
 * @param exclusive skip a key equal to `key`
 * @returns the index
 */
export function lowerBound(
  sorted: readonly string[],
  key: string,
  exclusive: boolean,
): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareCodePoints(sorted[mid]!, key);
    if (c < 0 || (exclusive && c === 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Keys read per statement while filtering by scope. */
const SCAN_CHUNK = 256;

/**
 * The disjoint, sorted ranges to read: the scope's prefixes intersected
 * with the requested prefix, dropping any range inside another.
 *
 * @param scopePrefixes the caller's prefixes
 * @param prefix the requested prefix
 * @returns prefixes, by code point ascending, none a prefix of another
 */
export function narrowPrefixes(
  scopePrefixes: readonly string[],
  prefix: string,
): string[] {
  const within = scopePrefixes.flatMap((p) =>
    p.startsWith(prefix) ? [p] : prefix.startsWith(p) ? [prefix] : []
  ).sort(compareCodePoints);
  const ranges: string[] = [];
  for (const p of within) {
    // Sorted, so a range inside an earlier one directly follows it.
    const last = ranges.at(-1);
    if (last === undefined || !p.startsWith(last)) ranges.push(p);
  }
  return ranges;
}

/**
 * Reads one page of keys by keyset. Ranges are read in order (disjoint
 * prefixes sort as their keys do), so the page is in code point order.
 *
 * @param read reads keys of one range from the store, by keyset
 * @param page what the caller asked for
 * @param scope what the caller may see; undefined: everything
 * @returns the page
 */
export async function listKeys(
  read: (range: KeyRange) => Promise<string[]>,
  page: ListPage,
  scope?: ListScope,
): Promise<ListResult> {
  // One key more than the page tells whether there is a next page.
  const want = page.limit === undefined ? Infinity : page.limit + 1;
  const keys: string[] = [];
  if (!scope) {
    keys.push(
      ...await read({
        prefix: page.prefix,
        after: page.after,
        ...(want === Infinity ? {} : { limit: want }),
      }),
    );
  } else {
    for (const prefix of narrowPrefixes(scope.prefixes, page.prefix)) {
      let after = page.after;
      while (keys.length < want) {
        const chunk = await read({ prefix, after, limit: SCAN_CHUNK });
        for (const key of chunk) {
          if (scope.allows(key)) keys.push(key);
          if (keys.length >= want) break;
        }
        if (chunk.length < SCAN_CHUNK) break;
        after = chunk.at(-1)!;
      }
      if (keys.length >= want) break;
    }
  }
  if (page.limit === undefined || keys.length <= page.limit) return { keys };
  keys.length = page.limit;
  return { keys, next: keys.at(-1)! };
}
