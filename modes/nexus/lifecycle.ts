// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The root-key lifecycle: create a key for an empty store, rebuild it from
 * keepers after a restart (the current key, or the new key of a rekey a
 * crash interrupted), check every candidate key against the store's
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
import type { Checkpoint } from "../../lib/wire/checkpoint.ts";
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
import type { PendingRootKey, StoreMeta } from "./store/backend.ts";

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
  target: KeyTarget = meta,
): Promise<PurposeKeys | undefined> {
  const keys = await derivePurposeKeys(
    candidate,
    new Uint8Array(meta.storeId),
    { schema1: meta.schemaVersion === 1 },
  );
  return await verifyKeyCheck(keys, new Uint8Array(target.keyCheck))
    ? keys
    : undefined;
}

/** A root key a store accepts: its check, threshold and commitments. */
export type KeyTarget = Pick<
  PendingRootKey,
  "keyCheck" | "threshold" | "commitments"
>;

/**
 * The root keys the store accepts now: its own, and while a rekey waits to
 * be committed, the rekey's new key.
 *
 * @param meta the store meta
 * @returns the current key first
 */
export function keyTargets(meta: StoreMeta): KeyTarget[] {
  return meta.pending ? [meta, meta.pending] : [meta];
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
    const shards = await keepers.fetchShards(status.index);
    try {
      let holding: Holding = "none";
      for (const shard of shards) {
        if (!(await verifyShard(storeId, shard, commitments))) {
          // A shard of a discarded pending store (PostgreSQL's first
          // start) may be replaced.
          if (holding === "none" && !(await abandonedShard(shard, abandoned))) {
            holding = "foreign";
          }
        } else if (shard.index === status.index) {
          return "own";
        } else {
          holding = shard.index;
        }
      }
      return holding;
    } finally {
      for (const shard of shards) zero(shard.value);
    }
  }));
}

// Whether a shard belongs to one of the abandoned stores.
async function abandonedShard(
  shard: Shard,
  abandoned: readonly ShardSet[],
): Promise<boolean> {
  for (const a of abandoned) {
    if (await verifyShard(a.storeId, shard, a.commitments)) return true;
  }
  return false;
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
  target: KeyTarget = meta,
): Promise<{ key: Uint8Array<ArrayBuffer>; keys: PurposeKeys } | undefined> {
  if (shards.length < target.threshold) return undefined;
  const key = await combineShards(shards.slice(0, target.threshold), {
    allowThresholdOne,
  });
  const keys = await checkRootKey(key, meta, target);
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
 * While a rekey waits to be committed (a crash between its two phases),
 * the keepers' pending shards can rebuild its new key: the current key is
 * preferred (the store drops the rekey), the new one is taken after a
 * round in which the current key could not be rebuilt (the store commits
 * the rekey), so either way nexus unlocks.
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
  const targets = keyTargets(meta);
  const verified = targets.map(() => new Map<number, Shard>());
  let recovered = false;
  let delay = 500;
  let toldForeign = false;
  let lastWarned = "";
  let lastWarnAt = 0;
  const unlockWith = async (at: number) => {
    const rebuilt = await rebuildRootKey(
      [...verified[at]!.values()],
      meta,
      config.allowThresholdOne,
      targets[at],
    );
    // `recovered` is set before the unlock's activation, which awaits: a
    // shard landing meanwhile finds the key rebuilt and adds nothing.
    if (rebuilt && !recovered && !state.unlocked) {
      recovered = true;
      const shards = verified[at]!.size;
      await state.unlock(rebuilt.key, rebuilt.keys);
      log.info(
        at === 0
          ? "Root key recovered from keepers"
          : "Root key of an interrupted rekey recovered from keepers' pending shards",
        { shards },
      );
    } else {
      zero(rebuilt?.key);
    }
  };
  // Each answer is checked as it arrives, so one slow keeper does not hold
  // up an unlock that the others already make possible.
  const take = async (
    status: KeeperStatus,
    shards: Shard[],
  ): Promise<"matched" | "foreign" | "none"> => {
    let matched = false;
    for (const shard of shards) {
      const at = state.unlocked
        ? -1
        : await targetOf(targets, meta.storeId, shard);
      if (at < 0) {
        zero(shard.value);
        continue;
      }
      matched = true;
      if (shard.index !== status.index) {
        // Verified, so usable; the next push gives this keeper its own share.
        log.warn(
          "Keeper holds the share of another position: check the order of SPIKE_NEXUS_KEEPER_PEERS",
          { keeper: status.index, share: shard.index },
        );
      }
      zero(verified[at]!.get(shard.index)?.value);
      verified[at]!.set(shard.index, shard);
    }
    if (shards.length > 0 && !state.unlocked) {
      status.holdsShard = matched;
      if (!matched) {
        log.warn("Keeper returned a shard that does not match its commitment", {
          keeper: status.index,
        });
      }
    }
    if (!state.unlocked) await unlockWith(0);
    return matched ? "matched" : shards.length > 0 ? "foreign" : "none";
  };
  try {
    while (!state.unlocked && !signal.aborted) {
      const answers = await Promise.all(
        keepers.statuses.map((s) =>
          keepers.fetchShards(s.index).then((shards) => take(s, shards))
        ),
      );
      if (!state.unlocked && targets.length > 1) await unlockWith(1);
      if (state.unlocked) break;
      const foreign = answers.filter((a) => a === "foreign").length;
      if (!toldForeign && foreign > 0 && verified.every((v) => v.size === 0)) {
        toldForeign = true;
        log.warn(
          "Keepers hold shards of another root key than this store's: if the store was restored from a backup, or the keepers serve another store, unlock it with the recovery shards of its own key (spike pilot operator restore)",
          { keepers: foreign },
        );
      }
      // Warn when the reasons change (and every few minutes), not on every
      // quick retry: an operator at the default level sees why it is locked.
      const waiting = describeKeepers(
        keepers.statuses.filter((k) => k.holdsShard !== true),
      );
      const now = Date.now();
      if (waiting !== lastWarned || now - lastWarnAt > LOCKED_REMINDER_MS) {
        log.warn("Nexus is locked, waiting for keeper shards", {
          verified: `${verified[0]!.size} of ${meta.threshold} needed`,
          waitingFor: waiting,
          retryInMs: delay,
        });
        lastWarned = waiting;
        lastWarnAt = now;
      } else {
        log.info("Waiting for keepers", {
          verifiedShards: verified[0]!.size,
          threshold: meta.threshold,
          retryInMs: delay,
        });
      }
      await sleep(delay * (0.75 + Math.random() * 0.5), signal);
      delay = Math.min(delay * 2, config.recoveryMaxIntervalMs);
    }
    return recovered;
  } finally {
    for (const v of verified) for (const s of v.values()) zero(s.value);
  }
}

// The index of the key target whose commitments `shard` matches, or -1.
async function targetOf(
  targets: readonly KeyTarget[],
  storeId: Uint8Array,
  shard: Shard,
): Promise<number> {
  for (let at = 0; at < targets.length; at++) {
    if (await verifyShard(storeId, shard, targets[at]!.commitments)) return at;
  }
  return -1;
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
 * @param checkpoint the store checkpoint to keep next to each
 * @returns how many keepers stored their shard
 */
export async function distributeShards(
  keepers: Keepers,
  shards: readonly Shard[],
  checkpoint?: Checkpoint,
): Promise<number> {
  // A split wider than the keeper list (keepers removed from the
  // configuration before a rekey) has shares with no keeper to take them.
  const listed = shards.filter((s) => s.index <= keepers.statuses.length);
  const results = await Promise.all(
    listed.map((s) => keepers.pushShard(s, checkpoint)),
  );
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
