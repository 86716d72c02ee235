// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Keeps every keeper supplied with its share once nexus is unlocked: a push
 * every `SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL`, a push at once when asked (a
 * restore, `spike pilot operator push`), and, while a keeper lacks its
 * share, retries to that keeper within seconds, so a keeper that comes back
 * gets its shard at once instead of one interval later. Failures and
 * recoveries are logged at warn, once per change, so the default log level
 * shows them without repeating them on every retry.
 *
 * @module
 */
import { zero } from "../../lib/crypto/zero.ts";
import type { Logger } from "../../lib/log.ts";
import { splitRootKey } from "../../lib/shard/mod.ts";
import { describeKeepers, type Keepers, type KeeperStatus } from "./keepers.ts";
import { distributeShards, sleep } from "./lifecycle.ts";
import type { RootKeyState } from "./root_key.ts";
import type { StoreMeta } from "./store/backend.ts";

/** The first retry delay for a keeper that lacks its share. */
const RETRY_FIRST_MS = 1_000;
/** The longest retry delay (never more than the push interval). */
const RETRY_MAX_MS = 30_000;

/** What one push did. */
export interface PushResult {
  /** Keepers that hold their share after the push. */
  readonly stored: number;
  /** Keepers configured. */
  readonly total: number;
  /** The keepers that did not take their share. */
  readonly failed: readonly KeeperStatus[];
}

/** Settings of a {@linkcode KeeperSync}. */
export interface KeeperSyncOptions {
  /** The keepers. */
  readonly keepers: Keepers;
  /** The root key (pushes happen only while unlocked). */
  readonly state: RootKeyState;
  /** The store meta: share count and threshold. */
  readonly meta: () => StoreMeta | undefined;
  /** `SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL`. */
  readonly intervalMs: number;
  /** Threshold-1 development mode. */
  readonly allowThresholdOne: boolean;
  /**
   * Whether this process runs the periodic pushes now (replicas: only the
   * push leader does; on-demand pushes run anyway). Default: always.
   */
  readonly leads?: () => boolean;
  /**
   * Whether the root key in memory is still the store's (read fresh): with
   * replicas another one may have rekeyed the store, and pushing an old
   * key's shards would overwrite the keepers' shards of the key the store
   * needs. False stops the push (and `onStaleKey` is told).
   */
  readonly keyIsCurrent?: () => Promise<boolean>;
  /** Told when a push found the key in memory replaced in the store. */
  readonly onStaleKey?: () => void;
  /** The operational log. */
  readonly log: Logger;
}

/** Pushes shards to keepers: periodically, on demand, and until they hold them. */
export class KeeperSync {
  readonly #options: KeeperSyncOptions;
  /** Keepers whose last push failed, by index. */
  readonly #failing = new Set<number>();
  #chain: Promise<unknown> = Promise.resolve();
  #wake: (() => void) | undefined;

  /** @param options what the sync needs */
  constructor(options: KeeperSyncOptions) {
    this.#options = options;
  }

  /** Whether some keeper did not take its share at the last push. */
  get lagging(): boolean {
    return this.#failing.size > 0;
  }

  /**
   * Pushes every keeper its share now, after any push already running.
   *
   * @param why what asked for the push, for the log
   * @returns what the push did
   * @throws when nexus is locked or the store has no meta
   */
  pushNow(why: string): Promise<PushResult> {
    const run = this.#chain.then(() => this.#push(why));
    this.#chain = run.catch(() => {});
    // A lagging keeper changes the loop's next wait.
    run.finally(() => this.#wake?.()).catch(() => {});
    return run;
  }

  /**
   * Runs `task` in turn with the pushes (after any running, before any
   * asked later): a rekey, or a recovery export, must never split a key
   * another task is replacing.
   *
   * @param task the work
   * @returns what it returns
   */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task);
    this.#chain = run.catch(() => {});
    return run;
  }

  async #push(why: string): Promise<PushResult> {
    const { keepers, state, log } = this.#options;
    const meta = this.#options.meta();
    if (!meta || !state.unlocked) {
      throw new Error("Nexus is locked: there is no root key to push");
    }
    if (this.#options.keyIsCurrent && !await this.#options.keyIsCurrent()) {
      this.#options.onStaleKey?.();
      throw new Error(
        "The store's root key was replaced (by another replica's rekey): nothing pushed",
      );
    }
    const stored = await state.withKey(async (key) => {
      const shards = await splitRootKey(key, meta.shareCount, meta.threshold, {
        allowThresholdOne: this.#options.allowThresholdOne,
      });
      try {
        return await distributeShards(keepers, shards);
      } finally {
        for (const s of shards) zero(s.value);
      }
    });
    // Keepers listed beyond the store's split (added to the configuration,
    // waiting for a rekey) hold nothing on purpose.
    const split = keepers.statuses.slice(0, meta.shareCount);
    const failed = split.filter((k) => !k.holdsShard);
    const newlyFailed = failed.filter((k) => !this.#failing.has(k.index));
    const back = split.filter((k) =>
      k.holdsShard && this.#failing.has(k.index)
    );
    for (const k of back) this.#failing.delete(k.index);
    for (const k of failed) this.#failing.add(k.index);
    const total = split.length;
    log.info("Shards pushed to keepers", { stored, keepers: total, why });
    if (back.length > 0) {
      log.warn("Keepers hold their shard again", {
        keepers: back.map((k) => `${k.index} (${k.url})`).join(", "),
        holding: `${stored} of ${total}`,
      });
    }
    if (newlyFailed.length > 0) {
      log.warn("Shard push failed; retrying within seconds", {
        holding: `${stored} of ${total}`,
        threshold: meta.threshold,
        failed: describeKeepers(newlyFailed),
      });
    }
    return { stored, total, failed };
  }

  /**
   * Pushes every interval until `signal` aborts; while a keeper lacks its
   * share, sooner, with a delay from 1 s doubling to 30 s.
   *
   * @param signal stops the loop
   * @param pushFirst push at once (false when a restore just pushed)
   */
  async run(signal: AbortSignal, pushFirst: boolean): Promise<void> {
    const { intervalMs, log } = this.#options;
    let retryMs = RETRY_FIRST_MS;
    let push = pushFirst;
    while (!signal.aborted) {
      if (push && (this.#options.leads?.() ?? true)) {
        try {
          await this.pushNow(this.lagging ? "retry" : "interval");
        } catch (e) {
          log.error("Shard push failed", { error: (e as Error).name });
        }
      }
      let wait = intervalMs;
      if (this.lagging) {
        wait = Math.min(retryMs, intervalMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      } else {
        retryMs = RETRY_FIRST_MS;
      }
      // A push from elsewhere (a restore, an operator) restarts the wait:
      // it just pushed, and may have found a keeper lagging or back.
      const pause = new AbortController();
      const stop = () => pause.abort();
      signal.addEventListener("abort", stop);
      let woken = false;
      this.#wake = () => {
        woken = true;
        pause.abort();
      };
      await sleep(wait, pause.signal);
      this.#wake = undefined;
      signal.removeEventListener("abort", stop);
      push = !woken;
    }
  }
}
