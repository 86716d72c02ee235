// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Rekey: a new root key, and with it a new split (shares and threshold)
 * over the configured keepers, without downtime and without re-encrypting
 * data (only the keyring is wrapped again).
 *
 * Two phases, so that a crash at any moment leaves `threshold` keepers
 * holding shards of a key the store accepts:
 *
 * 1. Prepare: the new key's check, split, commitments and the keyring
 *    wrapped for it are stored as the store's pending root key, beside the
 *    current one; each keeper of the new split gets its new shard as a
 *    pending shard, beside its current one, and nexus reads every one back
 *    and verifies it. Every keeper of the new split must hold its pending
 *    shard before the commit; when one does not within the rekey timeout,
 *    the rekey is abandoned (pending key and pending shards dropped).
 * 2. Commit: one store transaction makes the pending key the store's key.
 *    Then every keeper gets its new shard as its current one (which drops
 *    the pending one), and keepers beyond the new split forget theirs.
 *
 * After a crash before the commit, the keepers' current shards rebuild the
 * current key (and the pending key is dropped), or, when too few of them
 * survive, their pending shards rebuild the new key (and the rekey is
 * finished); after the commit, the keepers' pending or current shards of
 * the new key rebuild it (see `recoverFromKeepers`). Recovery shards
 * exported before the commit no longer fit the store.
 *
 * @module
 */
import { derivePurposeKeys, keyCheckValue } from "../../lib/crypto/kdf.ts";
import { zero } from "../../lib/crypto/zero.ts";
import type { Logger } from "../../lib/log.ts";
import {
  computeCommitments,
  type Shard,
  ShardError,
  splitRootKey,
  validateShamirParams,
  verifyShard,
} from "../../lib/shard/mod.ts";
import { ApiError, ErrorCode } from "../../lib/wire/errors.ts";
import type { Keepers } from "./keepers.ts";
import { distributeShards, sleep } from "./lifecycle.ts";
import type { RootKeyState } from "./root_key.ts";
import type { StoreMeta } from "./store/backend.ts";
import type { NexusStore } from "./store/open.ts";

/** What a rekey did. */
export interface RekeyOutcome {
  /** The store meta after the commit. */
  readonly meta: StoreMeta;
  /** Keepers that took their new shard as current at once. */
  readonly promoted: number;
}

/** What a rekey needs. */
export interface RekeyOptions {
  /** The store. */
  readonly store: NexusStore;
  /** The root key in memory. */
  readonly state: RootKeyState;
  /** The configured keepers; the new split goes to the first `shares`. */
  readonly keepers: Keepers;
  /** The store meta before the rekey. */
  readonly meta: StoreMeta;
  /** Shares of the new split. */
  readonly shares: number;
  /** Threshold of the new split. */
  readonly threshold: number;
  /** Threshold-1 development mode. */
  readonly allowThresholdOne: boolean;
  /** How long every keeper has to take its pending shard. */
  readonly timeoutMs: number;
  /** The operational log. */
  readonly log: Logger;
}

function refused(message: string): ApiError {
  return new ApiError(ErrorCode.BadRequest, message);
}

/**
 * Checks a rekey's split against the keepers configured.
 *
 * @param shares the requested share count
 * @param threshold the requested threshold
 * @param keepers how many keepers SPIKE_NEXUS_KEEPER_PEERS lists
 * @param allowThresholdOne threshold-1 development mode
 * @throws {ApiError} `api_bad_request` naming the rule
 */
export function checkSplit(
  shares: number,
  threshold: number,
  keepers: number,
  allowThresholdOne: boolean,
): void {
  try {
    validateShamirParams(shares, threshold, allowThresholdOne);
  } catch (e) {
    if (e instanceof ShardError) throw refused(e.message);
    throw e;
  }
  if (shares > keepers) {
    throw refused(
      `A split into ${shares} shares needs ${shares} keepers, but SPIKE_NEXUS_KEEPER_PEERS lists ${keepers}: add the keepers to the configuration and restart nexus first`,
    );
  }
}

/**
 * Replaces the root key and its split, in two phases (see the module).
 * The caller serializes it with every other push to the keepers.
 *
 * @param options what the rekey needs
 * @returns the new meta and how many keepers hold their new shard
 * @throws {ApiError} `api_bad_request` for a split the keepers cannot
 *   hold; `api_conflict` when a keeper did not take its pending shard in
 *   time (the rekey was abandoned and the store keeps its key)
 */
export async function rekey(options: RekeyOptions): Promise<RekeyOutcome> {
  const { store, state, keepers, meta, shares, threshold, log } = options;
  checkSplit(
    shares,
    threshold,
    keepers.statuses.length,
    options.allowThresholdOne,
  );
  const key = crypto.getRandomValues(new Uint8Array(32));
  let owned = false;
  const shards = await splitRootKey(key, shares, threshold, {
    allowThresholdOne: options.allowThresholdOne,
  });
  try {
    const next = await derivePurposeKeys(key, meta.storeId);
    const commitments = await computeCommitments(meta.storeId, shards);
    const window = await store.prepareRekey(next, {
      keyCheck: await keyCheckValue(next),
      threshold,
      shareCount: shares,
      commitments,
    });
    const missing = await spreadPending(
      keepers,
      shards,
      meta.storeId,
      commitments,
      options.timeoutMs,
    );
    // Drops the pending key (store row, keepers' pending shards) and
    // answers 409: the store keeps its root key.
    const abandon = async (
      clear: () => Promise<void>,
      reason: string,
    ): Promise<never> => {
      await clear();
      await dropPending(
        keepers,
        state,
        meta,
        shares,
        options.allowThresholdOne,
      );
      log.warn("Rekey abandoned: the store keeps its root key", { reason });
      throw new ApiError(ErrorCode.Conflict, `Rekey abandoned: ${reason}`);
    };
    if (missing.length > 0) {
      const names = missing.map((i) => {
        const k = keepers.statuses[i - 1]!;
        return `keeper ${i} (${k.url}: ${k.lastError ?? "no answer"})`;
      }).join(", ");
      await abandon(
        () => window.abort(),
        `${names} did not take the new shard within ${options.timeoutMs} ms; the store keeps its root key`,
      );
    }
    log.info("Rekey: every keeper holds its pending shard; committing");
    try {
      await window.commit();
    } catch (e) {
      await abandon(
        () => store.backend.clearPendingRootKey().catch(() => {}),
        (e as Error).message,
      );
    }
    state.replace(key);
    owned = true;
    log.warn(
      "Root key replaced (rekey): recovery shards must be exported again",
      {
        shares,
        threshold,
      },
    );
    const promoted = await distributeShards(keepers, shards);
    await Promise.all(
      keepers.statuses.slice(shares).map((k) => keepers.forget(k.index)),
    );
    return { meta: (await store.readMeta())!, promoted };
  } finally {
    for (const s of shards) zero(s.value);
    if (!owned) zero(key);
  }
}

// Pushes each keeper its pending shard and reads it back, retrying the
// ones that do not hold it until all do or time is up.
async function spreadPending(
  keepers: Keepers,
  shards: readonly Shard[],
  storeId: Uint8Array,
  commitments: readonly Uint8Array[],
  timeoutMs: number,
): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let missing = shards.map((s) => s.index);
  let delay = 250;
  const never = new AbortController().signal;
  for (;;) {
    const held = await Promise.all(missing.map(async (index) => {
      const shard = shards[index - 1]!;
      if (!await keepers.pushPending(shard)) return false;
      const back = await keepers.fetchShards(index);
      try {
        for (const s of back) {
          if (s.index === index && await verifyShard(storeId, s, commitments)) {
            return true;
          }
        }
        return false;
      } finally {
        for (const s of back) zero(s.value);
      }
    }));
    missing = missing.filter((_, i) => !held[i]);
    if (missing.length === 0 || Date.now() + delay > deadline) return missing;
    await sleep(delay, never);
    delay = Math.min(delay * 2, 2_000);
  }
}

// After an abandoned rekey: keepers of the current split get their
// current shard again (which drops the pending one), the others forget.
async function dropPending(
  keepers: Keepers,
  state: RootKeyState,
  meta: StoreMeta,
  shares: number,
  allowThresholdOne: boolean,
): Promise<void> {
  await state.withKey(async (key) => {
    const current = await splitRootKey(key, meta.shareCount, meta.threshold, {
      allowThresholdOne,
    });
    try {
      await distributeShards(keepers, current);
    } finally {
      for (const s of current) zero(s.value);
    }
  });
  await Promise.all(
    keepers.statuses.slice(meta.shareCount, Math.max(shares, meta.shareCount))
      .map((k) => keepers.forget(k.index)),
  );
}

/**
 * Makes keepers beyond the store's split forget shards that are not
 * shares of its key: left by a rekey a crash interrupted (its pending
 * shards, or the old shards of keepers that left the split). A keeper
 * beyond the split that holds a verified share (a reordered list) keeps it.
 *
 * @param keepers the configured keepers
 * @param meta the store meta (after unlock)
 * @returns how many keepers were told to forget
 */
export async function forgetStrayShards(
  keepers: Keepers,
  meta: StoreMeta,
): Promise<number> {
  const beyond = keepers.statuses.slice(meta.shareCount);
  const told = await Promise.all(beyond.map(async (k) => {
    const shards = await keepers.fetchShards(k.index);
    try {
      if (shards.length === 0) return false;
      for (const s of shards) {
        if (await verifyShard(meta.storeId, s, meta.commitments)) return false;
      }
      return await keepers.forget(k.index);
    } finally {
      for (const s of shards) zero(s.value);
    }
  }));
  return told.filter(Boolean).length;
}
