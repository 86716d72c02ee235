// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The first start of a shared store: replicas that start together on an
 * empty database make exactly one store and one root key.
 *
 * The creator is whoever holds the `create` advisory lock (a session lock
 * on a connection of its own, released when the process dies). It writes
 * the new store's meta as pending before any keeper gets a shard, pushes
 * the shards, and turns the meta ready only once `threshold` keepers hold
 * their verified share. The others wait for a ready store and then recover
 * the key from the keepers like after any restart; the key never passes
 * through the database.
 *
 * A creator killed half-way leaves a pending meta. The next lock holder
 * finishes it when `threshold` keepers hold verified shards of its key
 * (they rebuild the key; nothing else could), or else discards it and
 * creates a new store whose push overwrites the abandoned shards, so the
 * keepers never end up holding shards of two keys that both matter. The
 * database remembers every discarded store until a store is ready, so a
 * keeper still holding the shard of an earlier abandoned store (its
 * creator died too, or the keeper was away) is overwritten as well, while
 * a shard of no store made here still stops the creation.
 *
 * @module
 */
import type { Logger } from "../../../lib/log.ts";
import { zero } from "../../../lib/crypto/zero.ts";
import type { Shard } from "../../../lib/shard/mod.ts";
import { verifyShard } from "../../../lib/shard/mod.ts";
import type { NexusConfig } from "../config.ts";
import type { Keepers } from "../keepers.ts";
import { initializeNewStore, rebuildRootKey, sleep } from "../lifecycle.ts";
import type { RootKeyState } from "../root_key.ts";
import type { StoreMeta } from "../store/backend.ts";
import type { PostgresBackend } from "../store/postgres_backend.ts";
import { lockKey } from "../store/postgres_schema.ts";

/** What a replica needs to find or create the shared store. */
export interface SharedStartOptions {
  /** The store's backend. */
  backend: PostgresBackend;
  /** The split a new store gets. */
  config: Pick<NexusConfig, "shares" | "threshold" | "allowThresholdOne">;
  /** Where the root key goes. */
  state: RootKeyState;
  /** The keepers to push to or recover from. */
  keepers: Keepers;
  /** Where to say what happens. */
  log: Logger;
  /** Stops the wait. */
  signal: AbortSignal;
}

/** How a replica came to its store. */
export interface SharedStart {
  /** The store's meta. */
  readonly meta: StoreMeta;
  /** Whether this replica created (or finished creating) it: it is unlocked. */
  readonly created: boolean;
}

/**
 * Returns the ready store, creating it when this replica wins the create
 * lock on an empty database.
 *
 * @param options the backend, settings, state, keepers and stop signal
 * @returns the meta and whether this replica made it, or undefined when
 * stopped first
 */
export async function startSharedStore(
  options: SharedStartOptions,
): Promise<SharedStart | undefined> {
  const { backend, log, signal } = options;
  let waited = false;
  while (!signal.aborted) {
    const ready = await backend.readMeta();
    if (ready) return { meta: ready, created: false };
    const lock = await backend.sql.reserve();
    try {
      const [row] = await lock.unsafe(
        `SELECT pg_try_advisory_lock(${lockKey("create")}) AS got`,
      );
      if (row!.got) {
        try {
          return await create(options);
        } finally {
          await lock.unsafe(
            `SELECT pg_advisory_unlock(${lockKey("create")})`,
          ).catch(() => {});
        }
      }
    } finally {
      lock.release();
    }
    if (!waited) {
      log.warn("Another replica is creating the store; waiting for it");
      waited = true;
    }
    await sleep(250 + Math.random() * 250, signal);
  }
  return undefined;
}

// Holds the create lock.
async function create(
  options: SharedStartOptions,
): Promise<SharedStart | undefined> {
  const { backend, state, keepers, log } = options;
  const ready = await backend.readMeta();
  if (ready) return { meta: ready, created: false };
  const pending = await backend.readPendingMeta();
  if (pending) {
    if (await finish(pending, options)) {
      log.warn(
        "Finished creating the store that a replica left half-made: enough keepers held its shards",
      );
      return { meta: pending, created: true };
    }
    log.warn(
      "Discarding a store that a replica left half-made (too few keepers took its shards); creating a new one",
    );
    await backend.discardPendingMeta(pending.storeId);
  }
  const abandoned = await backend.readAbandoned();
  const meta = await initializeNewStore({
    store: {
      readMeta: () => backend.readMeta(),
      reserveMeta: (m) => backend.initPendingMeta(m),
      initMeta: (m) => backend.confirmPendingMeta(m.storeId),
    },
    config: options.config,
    state,
    keepers,
    log,
    signal: options.signal,
    abandoned,
    misplaced:
      "SPIKE_NEXUS_DATABASE_URL names the wrong database (or its options the wrong schema)",
  });
  return meta && { meta, created: true };
}

// Rebuilds a pending store's key from the keepers, if they hold enough
// shards of it, then makes the store ready and unlocks.
async function finish(
  pending: StoreMeta,
  options: {
    backend: PostgresBackend;
    config: Pick<NexusConfig, "allowThresholdOne">;
    state: RootKeyState;
    keepers: Keepers;
  },
): Promise<boolean> {
  const { backend, state, keepers } = options;
  const shards: Shard[] = [];
  try {
    const fetched = await Promise.all(
      keepers.statuses.map((s) => keepers.fetchShards(s.index)),
    );
    for (const shard of fetched.flat()) {
      if (
        !shards.some((s) => s.index === shard.index) &&
        await verifyShard(pending.storeId, shard, pending.commitments)
      ) {
        shards.push(shard);
      } else {
        zero(shard.value);
      }
    }
    const rebuilt = await rebuildRootKey(
      shards,
      pending,
      options.config.allowThresholdOne,
    );
    if (!rebuilt) return false;
    try {
      await backend.confirmPendingMeta(pending.storeId);
    } catch (e) {
      zero(rebuilt.key);
      throw e;
    }
    await state.unlock(rebuilt.key, rebuilt.keys);
    return true;
  } finally {
    for (const s of shards) zero(s.value);
  }
}
