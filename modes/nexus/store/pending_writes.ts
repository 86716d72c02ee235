// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Writes the rows hold but the integrity row does not yet: on PostgreSQL
 * every write logs `(path, from, to)` and the push leader folds the log
 * into the row later (`postgres_schema.ts`). To check a snapshot against
 * the row, the pending writes are taken back out of it first; each path's
 * entries must chain from the folded revision to the one its row holds.
 *
 * @module
 */
import type { IntegritySnapshot, PendingWrite } from "./backend.ts";

/** A snapshot as the integrity row was folded at, or why it cannot be. */
export type Unfolded =
  | { readonly snapshot: IntegritySnapshot; readonly problem?: undefined }
  | { readonly problem: string };

function chain(
  entries: PendingWrite[],
  current: number,
  what: string,
): number | string {
  entries.sort((a, b) => a.from - b.from);
  let at = entries[0]!.from;
  for (const e of entries) {
    if (e.from !== at || e.to !== at + 1) {
      return `The store's write log does not chain for ${what}: entries were removed or added`;
    }
    at = e.to;
  }
  return at === current
    ? entries[0]!.from
    : `${what} is at ${current}, but the store's write log ends at ${at}: it was rolled back or altered`;
}

/**
 * Takes the pending writes out of a snapshot.
 *
 * @param snapshot a snapshot with its pending writes
 * @returns the snapshot as folded, or a sentence naming what disagrees
 */
export function unfoldPending(snapshot: IntegritySnapshot): Unfolded {
  const pending = snapshot.pending ?? [];
  if (pending.length === 0) return { snapshot };
  const byPath = new Map<string | null, PendingWrite[]>();
  for (const e of pending) {
    const list = byPath.get(e.path) ?? [];
    list.push(e);
    byPath.set(e.path, list);
  }
  let policyGeneration = snapshot.policyGeneration;
  const policy = byPath.get(null);
  if (policy) {
    const folded = chain(policy, policyGeneration, "The policy set");
    if (typeof folded === "string") return { problem: folded };
    policyGeneration = folded;
    byPath.delete(null);
  }
  const paths: string[] = [];
  const revisions: number[] = [];
  for (let i = 0; i < snapshot.paths.length; i++) {
    const path = snapshot.paths[i]!;
    const entries = byPath.get(path);
    let revision = snapshot.revisions[i]!;
    if (entries) {
      byPath.delete(path);
      const folded = chain(entries, revision, `Secret "${path}"`);
      if (typeof folded === "string") return { problem: folded };
      revision = folded;
    }
    if (revision > 0) {
      paths.push(path);
      revisions.push(revision);
    }
  }
  const [missing] = byPath.keys();
  if (missing !== undefined) {
    return {
      problem:
        `Secret "${missing}" has writes in the store's write log but no head row: it was removed`,
    };
  }
  return {
    snapshot: {
      ...(snapshot.row ? { row: snapshot.row } : {}),
      paths,
      revisions,
      policyGeneration,
    },
  };
}
