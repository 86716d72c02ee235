// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The root-key lifecycle: create a key for an empty store, rebuild it from
 * keepers after a restart, check every candidate key against the store's
 * key-check value, and keep every keeper supplied with its share.
 *
 * @module
 */
import {
  derivePurposeKeys,
  keyCheckValue,
  type PurposeKeys,
  verifyKeyCheck,
} from "../../lib/crypto/kdf.ts";
import { zero } from "../../lib/crypto/zero.ts";
import type { Logger } from "../../lib/log.ts";
import {
  combineShards,
  computeCommitments,
  type Shard,
  splitRootKey,
  verifyShard,
} from "../../lib/shard/mod.ts";
import type { NexusConfig } from "./config.ts";
import { describeKeepers, type Keepers, type KeeperStatus } from "./keepers.ts";
import type { RootKeyState } from "./root_key.ts";
import type { StoreMeta } from "./store/backend.ts";

/** What the lifecycle needs from the store. */
export interface MetaStore {
  /** The meta record, or undefined for an empty store. */
  readMeta(): Promise<StoreMeta | undefined>;
  /** Writes the meta record of a new store. */
  initMeta(meta: StoreMeta): Promise<void>;
  /**
   * Records a store being created, before any keeper gets a shard (a
   * shared store: so a replica that takes over from a creator that died
   * recognises the shards it pushed).
   */
  reserveMeta?(meta: StoreMeta): Promise<void>;
}

// A store's id and share commitments: what a shard is checked against.
type ShardSet = Pick<StoreMeta, "storeId" | "commitments">;

const STORE_ID_BYTES = 16;
/** How often a locked nexus repeats its warning when nothing changed. */
const LOCKED_REMINDER_MS = 5 * 60_000;

/**
 * Derives the purpose keys of `candidate` and checks them against the
 * store's key-check value.
 *
 * @param candidate a reconstructed root key
 * @param meta the store meta
 * @returns the purpose keys, or undefined when the key is wrong
 */
export async function checkRootKey(
  candidate: Uint8Array<ArrayBuffer>,
  meta: StoreMeta,
): Promise<PurposeKeys | undefined> {
  const keys = await derivePurposeKeys(
    candidate,
    new Uint8Array(meta.storeId),
    { schema1: meta.schemaVersion === 1 },
  );
  return await verifyKeyCheck(keys, new Uint8Array(meta.keyCheck))
    ? keys
    : undefined;
}

/**
 * Raised when nexus must not create a new store: a keeper already holds a
 * shard, so another store's key may depend on it, or one keeper answers
 * for two positions of the peer list.
 */
export class NewStoreRefusedError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "NewStoreRefusedError";
  }
}

/**
 * Creates the root key of an empty store: key, store id, key check, share
 * commitments.
 *
 * Before every push, each keeper that answers must hold nothing or the new
 * key's share: pushing would overwrite the shards of a store nexus cannot
 * see (a wrong or unmounted data directory). After the push, each keeper's
 * shard is read back and checked, so one keeper listed twice (two spellings
 * of one host) cannot pass for two. The meta record is written only once
 * `threshold` keepers hold their own verified share, so a crash in between
 * leaves an empty store, never a store whose key nobody holds.
 *
 * @param options the store, split parameters, the state to unlock, the
 * keepers, `abandoned`: the stores whose creators died before enough
 * keepers held their shards (those shards may be overwritten), and
 * `misplaced`: how the store's setting could name the wrong store, for
 * the refusal (default: the SQLite data folder)
 * @returns the new meta record, or undefined when stopped first
 * @throws {NewStoreRefusedError} when a keeper already holds a shard, or a
 * keeper holds the share pushed to another position
 */
export async function initializeNewStore(options: {
  store: MetaStore;
  config: Pick<NexusConfig, "shares" | "threshold" | "allowThresholdOne">;
  state: RootKeyState;
  keepers: Keepers;
  log: Logger;
  signal: AbortSignal;
  abandoned?: readonly ShardSet[];
  misplaced?: string;
}): Promise<StoreMeta | undefined> {
  const { store, config, state, keepers, log, signal, abandoned } = options;
  const misplaced = options.misplaced ??
    "SPIKE_NEXUS_DATA_DIR names the wrong folder";
  const key = crypto.getRandomValues(new Uint8Array(32));
  const storeId = crypto.getRandomValues(new Uint8Array(STORE_ID_BYTES));
  const keys = await derivePurposeKeys(key, storeId);
  const shards = await splitRootKey(key, config.shares, config.threshold, {
    allowThresholdOne: config.allowThresholdOne,
  });
  try {
    const commitments = await computeCommitments(storeId, shards);
    const meta: StoreMeta = {
      storeId,
      keyCheck: await keyCheckValue(keys),
      threshold: config.threshold,
      shareCount: config.shares,
      commitments,
    };
    const holdings = () =>
      readHoldings(keepers, storeId, commitments, abandoned);
    await store.reserveMeta?.(meta);
    let delay = 500;
    for (;;) {
      // Checked before every push: a keeper may come up late.
      refuseForeignShards(keepers, await holdings(), misplaced);
      await distributeShards(keepers, shards);
      const after = await holdings();
      refuseTwins(keepers, after);
      const held = after.filter((h) => h === "own").length;
      if (held >= config.threshold) break;
      if (signal.aborted) {
        zero(key);
        return undefined;
      }
      log.warn("Waiting for keepers to take the new root key's shards", {
        stored: held,
        threshold: config.threshold,
        waitingFor: describeKeepers(
          keepers.statuses.filter((_, i) => after[i] !== "own"),
        ),
      });
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 10_000);
    }
    await store.initMeta(meta);
    await state.unlock(key, keys);
    return meta;
  } catch (e) {
    zero(key);
    throw e;
  } finally {
    for (const s of shards) zero(s.value);
  }
}

/**
 * What a keeper holds, checked against a set of commitments: nothing (or it
 * cannot be reached), the share of its own position, the share of position
 * `n` (a reordered list, or one keeper listed twice), or a shard of another
 * key.
 */
type Holding = "none" | "own" | number | "foreign";

function readHoldings(
  keepers: Keepers,
  storeId: Uint8Array,
  commitments: readonly Uint8Array[],
  abandoned: readonly ShardSet[] = [],
): Promise<Holding[]> {
  return Promise.all(keepers.statuses.map(async (status) => {
    const shard = await keepers.fetchShard(status.index);
    if (!shard) return "none";
    try {
      if (!(await verifyShard(storeId, shard, commitments))) {
        for (const a of abandoned) {
          if (await verifyShard(a.storeId, shard, a.commitments)) {
            return "none";
          }
        }
        return "foreign";
      }
      return shard.index === status.index ? "own" : shard.index;
    } finally {
      zero(shard.value);
    }
  }));
}

function refuseForeignShards(
  keepers: Keepers,
  holdings: Holding[],
  misplaced: string,
): void {
  const at = holdings.indexOf("foreign");
  if (at < 0) return;
  const { index, url } = keepers.statuses[at]!;
  throw new NewStoreRefusedError(
    `The store is empty but keeper ${index} (${url}) already holds a shard, which may belong to another store: if ${misplaced}, fix it; to start a new store on purpose, restart every keeper so they hold nothing`,
  );
}

function refuseTwins(keepers: Keepers, holdings: Holding[]): void {
  const at = holdings.findIndex((h) => typeof h === "number");
  if (at < 0) return;
  const { index, url } = keepers.statuses[at]!;
  const other = keepers.statuses[(holdings[at] as number) - 1]!;
  throw new NewStoreRefusedError(
    `Keeper ${index} (${url}) holds the share pushed to keeper ${other.index} (${other.url}): they are one keeper listed twice in SPIKE_NEXUS_KEEPER_PEERS; list each keeper once`,
  );
}

/**
 * Verifies shards against the commitments, and once `threshold` verified
 * shards are in, rebuilds and checks the root key.
 *
 * @param shards candidate shards (distinct indexes); not zeroed here
 * @param meta the store meta
 * @param allowThresholdOne accept a single shard for threshold 1
 * @returns the key and its purpose keys, or undefined when the shards do
 * not rebuild this store's key
 */
export async function rebuildRootKey(
  shards: readonly Shard[],
  meta: StoreMeta,
  allowThresholdOne: boolean,
): Promise<{ key: Uint8Array<ArrayBuffer>; keys: PurposeKeys } | undefined> {
  if (shards.length < meta.threshold) return undefined;
  const key = await combineShards(shards.slice(0, meta.threshold), {
    allowThresholdOne,
  });
  const keys = await checkRootKey(key, meta);
  if (!keys) {
    zero(key);
    return undefined;
  }
  return { key, keys };
}

/**
 * Polls the keepers with backoff until `threshold` shards that match their
 * commitments rebuild a key that passes the key check, then unlocks. A
 * keeper that returns a wrong shard is skipped and logged, never trusted.
 *
 * @param options what recovery needs
 * @returns once unlocked or stopped: true when this loop unlocked, false
 * when an operator restore did (and pushed the shards itself) or on stop
 */
export async function recoverFromKeepers(options: {
  keepers: Keepers;
  meta: StoreMeta;
  state: RootKeyState;
  config: Pick<NexusConfig, "recoveryMaxIntervalMs" | "allowThresholdOne">;
  log: Logger;
  signal: AbortSignal;
}): Promise<boolean> {
  const { keepers, meta, state, config, log, signal } = options;
  const verified = new Map<number, Shard>();
  let recovered = false;
  let delay = 500;
  let lastWarned = "";
  let lastWarnAt = 0;
  // Each answer is checked as it arrives, so one slow keeper does not hold
  // up an unlock that the others already make possible.
  const take = async (status: KeeperStatus, shard: Shard | undefined) => {
    if (!shard || state.unlocked) return zero(shard?.value);
    if (!(await verifyShard(meta.storeId, shard, meta.commitments))) {
      status.holdsShard = false;
      log.warn("Keeper returned a shard that does not match its commitment", {
        keeper: status.index,
      });
      return zero(shard.value);
    }
    if (shard.index !== status.index) {
      // Verified, so usable; the next push gives this keeper its own share.
      log.warn(
        "Keeper holds the share of another position: check the order of SPIKE_NEXUS_KEEPER_PEERS",
        { keeper: status.index, share: shard.index },
      );
    }
    status.holdsShard = true;
    zero(verified.get(shard.index)?.value);
    verified.set(shard.index, shard);
    const rebuilt = await rebuildRootKey(
      [...verified.values()],
      meta,
      config.allowThresholdOne,
    );
    // `recovered` is set before the unlock's activation, which awaits: a
    // shard landing meanwhile finds the key rebuilt and adds nothing.
    if (rebuilt && !recovered && !state.unlocked) {
      recovered = true;
      const shards = verified.size;
      await state.unlock(rebuilt.key, rebuilt.keys);
      log.info("Root key recovered from keepers", { shards });
    } else {
      zero(rebuilt?.key);
    }
  };
  try {
    while (!state.unlocked && !signal.aborted) {
      await Promise.all(
        keepers.statuses.map((s) =>
          keepers.fetchShard(s.index).then((shard) => take(s, shard))
        ),
      );
      if (state.unlocked) break;
      // Warn when the reasons change (and every few minutes), not on every
      // quick retry: an operator at the default level sees why it is locked.
      const waiting = describeKeepers(
        keepers.statuses.filter((k) => k.holdsShard !== true),
      );
      const now = Date.now();
      if (waiting !== lastWarned || now - lastWarnAt > LOCKED_REMINDER_MS) {
        log.warn("Nexus is locked, waiting for keeper shards", {
          verified: `${verified.size} of ${meta.threshold} needed`,
          waitingFor: waiting,
          retryInMs: delay,
        });
        lastWarned = waiting;
        lastWarnAt = now;
      } else {
        log.info("Waiting for keepers", {
          verifiedShards: verified.size,
          threshold: meta.threshold,
          retryInMs: delay,
        });
      }
      await sleep(delay * (0.75 + Math.random() * 0.5), signal);
      delay = Math.min(delay * 2, config.recoveryMaxIntervalMs);
    }
    return recovered;
  } finally {
    for (const s of verified.values()) zero(s.value);
  }
}

/**
 * Asks every keeper for its shard now and records in its status whether it
 * is reachable and holds the share of its position (for `pilot status`).
 *
 * @param keepers the keepers
 * @param meta the store meta, for the commitments
 */
export async function checkKeepers(
  keepers: Keepers,
  meta: StoreMeta,
): Promise<void> {
  const holdings = await readHoldings(keepers, meta.storeId, meta.commitments);
  holdings.forEach((holding, i) => {
    // "none": fetching already recorded an unreachable or empty keeper.
    if (holding !== "none") keepers.statuses[i]!.holdsShard = holding === "own";
  });
}

/**
 * Pushes each shard to its keeper.
 *
 * @param keepers the keepers
 * @param shards shard i for keeper i
 * @returns how many keepers stored their shard
 */
export async function distributeShards(
  keepers: Keepers,
  shards: readonly Shard[],
): Promise<number> {
  const results = await Promise.all(shards.map((s) => keepers.pushShard(s)));
  return results.filter(Boolean).length;
}

/**
 * Waits `ms`, or less when `signal` aborts.
 *
 * @param ms the delay
 * @param signal cancels the wait
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}
