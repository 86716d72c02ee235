// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Break-the-glass restore: operators feed recovery shards one at a time.
 * Each shard is checked against its commitment before it counts; a
 * duplicate, a wrong shard or a restore on an unlocked nexus is refused;
 * partial shards are forgotten after a period of inactivity.
 *
 * @module
 */
import { zero } from "../../lib/crypto/zero.ts";
import { ApiError, ErrorCode } from "../../lib/wire/errors.ts";
import { type Shard, verifyShard } from "../../lib/shard/mod.ts";
import type { StoreMeta } from "./store/backend.ts";
import type { RootKeyState } from "./root_key.ts";
import { rebuildRootKey } from "./lifecycle.ts";

/** The answer to one restore call, as on the wire. */
export interface RestoreStatus {
  /** Shards held so far. */
  readonly collected: number;
  /** Shards still needed. */
  readonly remaining: number;
  /** Whether the root key is restored. */
  readonly restored: boolean;
}

/** Collects restore shards until the threshold is reached. */
export class RestoreSession {
  readonly #state: RootKeyState;
  readonly #meta: () => StoreMeta | undefined;
  readonly #timeoutMs: number;
  readonly #allowThresholdOne: boolean;
  readonly #shards = new Map<number, Shard>();
  #expiry: ReturnType<typeof setTimeout> | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * @param state the root-key state this session unlocks
   * @param meta reads the store meta (undefined while the store is empty)
   * @param timeoutMs inactivity after which partial shards are forgotten
   * @param allowThresholdOne threshold-1 development mode
   */
  constructor(
    state: RootKeyState,
    meta: () => StoreMeta | undefined,
    timeoutMs: number,
    allowThresholdOne: boolean,
  ) {
    this.#state = state;
    this.#meta = meta;
    this.#timeoutMs = timeoutMs;
    this.#allowThresholdOne = allowThresholdOne;
  }

  /**
   * Forgets every partial shard (zeroed): on expiry, once restored, and
   * when nexus unlocks from its keepers instead.
   */
  clear(): void {
    clearTimeout(this.#expiry);
    this.#expiry = undefined;
    for (const s of this.#shards.values()) zero(s.value);
    this.#shards.clear();
  }

  /** How many shards are held now. */
  get collected(): number {
    return this.#shards.size;
  }

  /**
   * Takes one shard. The session owns `shard.value` from here on.
   *
   * @param shard the operator's shard
   * @returns the progress
   * @throws {ApiError} 409 when unlocked or for a shard index already given,
   * 400 for a shard that does not match its commitment
   */
  submit(shard: Shard): Promise<RestoreStatus> {
    // One shard at a time, so two calls cannot both reach the threshold.
    const result = this.#queue.then(() => this.#submit(shard));
    this.#queue = result.catch(() => {});
    return result;
  }

  async #submit(shard: Shard): Promise<RestoreStatus> {
    const meta = this.#meta();
    try {
      if (this.#state.unlocked) {
        throw new ApiError(
          ErrorCode.Conflict,
          "Restore refused: nexus already has its root key",
        );
      }
      if (!meta) {
        throw new ApiError(
          ErrorCode.BadRequest,
          "The store is empty: there is nothing to restore",
        );
      }
      if (this.#shards.has(shard.index)) {
        // A conflict with the session, not bad input: pilot can then tell
        // the operator it was a repeat rather than a foreign shard.
        throw new ApiError(
          ErrorCode.Conflict,
          `Restore refused: shard ${shard.index} was already given`,
        );
      }
      if (!(await verifyShard(meta.storeId, shard, meta.commitments))) {
        throw new ApiError(
          ErrorCode.BadRequest,
          `It is not a shard of this installation's current root key: shard ${shard.index} does not match its commitment (recovery shards exported before a rekey, or for another store or backup, do not fit; "spike pilot status" shows the id of the key it needs)`,
        );
      }
      if (this.#state.unlocked) {
        throw new ApiError(ErrorCode.Conflict, "Restore refused: unlocked");
      }
      this.#shards.set(shard.index, { index: shard.index, value: shard.value });
      // Inactivity is counted from the last accepted shard; the timer must
      // not keep a stopping nexus alive.
      clearTimeout(this.#expiry);
      this.#expiry = setTimeout(() => this.clear(), this.#timeoutMs);
      Deno.unrefTimer(this.#expiry);
    } catch (e) {
      zero(shard.value);
      throw e;
    }
    const collected = this.#shards.size;
    if (collected < meta.threshold) {
      return {
        collected,
        remaining: meta.threshold - collected,
        restored: false,
      };
    }
    const rebuilt = await rebuildRootKey(
      [...this.#shards.values()],
      meta,
      this.#allowThresholdOne,
    );
    this.clear();
    if (!rebuilt) {
      throw new ApiError(
        ErrorCode.BadRequest,
        "Restore failed: the shards do not rebuild this installation's root key",
      );
    }
    await this.#state.unlock(rebuilt.key, rebuilt.keys);
    return { collected, remaining: 0, restored: true };
  }
}
