// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Whole-store rollback: when nexus unlocks, it compares the store with the
 * newest valid checkpoint among those the keepers answered with (the same
 * keepers whose shards rebuilt the key); a store older than it, or another
 * copy at the same generation, is held: the key is known, no data is
 * served, one log line says why, until an operator accepts the store as it
 * is (`spike pilot operator accept-rollback`), which is also how a store
 * restored from a backup comes back. A store that fails its own digest
 * (`store/open.ts`) is held the same way.
 *
 * While held, nexus keeps pushing shards with the newest checkpoint it saw,
 * never the older store's, so the keepers keep the evidence.
 *
 * What it cannot see: writes made after the last checkpoint that reached
 * the keepers (at most `SPIKE_NEXUS_CHECKPOINT_DELAY` after a write, longer
 * while keepers are unreachable), and a rollback while every keeper lost
 * its checkpoint (all restarted), since keepers keep it in memory only.
 *
 * @module
 */
import type { Logger } from "../../lib/log.ts";
import {
  type Checkpoint,
  compareCheckpoints,
} from "../../lib/wire/checkpoint.ts";
import { ApiError, ErrorCode } from "../../lib/wire/errors.ts";
import type { AuditHead } from "./store/checkpoint_mac.ts";
import type { NexusStore } from "./store/open.ts";

/** What `status` says about the store's integrity. */
export interface IntegrityStatus {
  /** `ok`, or why nothing is served. */
  readonly state:
    | "ok"
    | "rolled-back"
    | "diverged"
    | "tampered"
    | "unanchored"
    | "restored";
  /** The sentence of the log line, when held. */
  readonly reason?: string;
  /** The store as it is: epoch and generation. */
  readonly store: { readonly epoch: number; readonly generation: number };
  /** The newest valid checkpoint the keepers held at unlock, if any. */
  readonly checkpoint?: {
    readonly epoch: number;
    readonly generation: number;
  };
}

/** What an accepted rollback did. */
export interface AcceptedRollback {
  /** The new epoch, above every checkpoint seen. */
  readonly epoch: number;
  /** The generation accepted. */
  readonly generation: number;
  /** The checkpoint the store fell behind, if any. */
  readonly checkpoint?: {
    readonly epoch: number;
    readonly generation: number;
  };
}

const UNTIL =
  "nexus serves no data until an operator runs spike pilot operator accept-rollback";

function position(c: { epoch: number; generation: number }) {
  return { epoch: c.epoch, generation: c.generation };
}

/** Holds a store that is older than the keepers' checkpoint. */
export class RollbackGuard {
  readonly #store: NexusStore;
  readonly #log: Logger;
  #newest: Checkpoint | undefined;
  #held: { state: "rolled-back" | "diverged"; reason: string } | undefined;

  /**
   * @param store the store
   * @param log where the hold is said
   */
  constructor(store: NexusStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /**
   * Compares the just-unlocked store with the keepers' checkpoints; runs
   * before anything is served.
   *
   * @param offered the checkpoints the keepers answered with, by position
   */
  settle(offered: readonly { index: number; checkpoint: Checkpoint }[]): void {
    this.#held = undefined;
    this.#newest = undefined;
    for (const { index, checkpoint } of offered) {
      if (!this.#store.verifyCheckpoint(checkpoint)) {
        this.#log.warn(
          "A keeper holds a store checkpoint that does not verify with this store's key; it is ignored",
          { keeper: index },
        );
      } else if (
        !this.#newest || compareCheckpoints(checkpoint, this.#newest) > 0
      ) {
        this.#newest = checkpoint;
      }
    }
    const hold = this.#store.hold;
    if (hold) {
      this.#log.error(
        hold.kind === "restored"
          ? `${hold.message}: ${UNTIL}`
          : `${hold.message}: ${UNTIL} (to accept the store as it is) or restores it from a backup`,
      );
      return;
    }
    const newest = this.#newest;
    const rows = this.#store.rows;
    if (!newest || !rows) return;
    const behind = rows.epoch - newest.epoch ||
      rows.generation - newest.generation;
    if (behind < 0) {
      this.#hold(
        "rolled-back",
        `The store is older than the keepers' checkpoint: it holds ${rows.generation} writes (epoch ${rows.epoch}) where the keepers saw ${newest.generation} (epoch ${newest.epoch}), so it was replaced by an older copy or restored from a backup; ${UNTIL}`,
      );
    } else if (behind === 0 && rows.digest.toHex() !== newest.digest) {
      this.#hold(
        "diverged",
        `The store differs from the keepers' checkpoint at the same ${rows.generation} writes (epoch ${rows.epoch}): it is another copy of the store that took other writes; ${UNTIL}`,
      );
    }
  }

  #hold(state: "rolled-back" | "diverged", reason: string): void {
    this.#held = { state, reason };
    this.#log.error(reason);
  }

  /**
   * The audit chain head of the newest valid checkpoint seen.
   *
   * @returns the head, when one was anchored
   */
  get keeperAudit(): AuditHead | undefined {
    const audit = this.#newest?.audit;
    return audit && { seq: audit.seq, hash: Uint8Array.fromHex(audit.hash) };
  }

  /** Whether the store may be served (it is neither held nor failing). */
  get serving(): boolean {
    return this.#held === undefined && this.#store.hold === undefined;
  }

  /**
   * The store's integrity for `status`.
   *
   * @returns undefined while locked
   */
  status(): IntegrityStatus | undefined {
    const rows = this.#store.rows;
    if (!rows) return undefined;
    const hold = this.#store.hold;
    const state = hold?.kind ?? this.#held?.state ?? "ok";
    const reason = hold?.message ?? this.#held?.reason;
    return {
      state,
      ...(reason === undefined ? {} : { reason }),
      store: position(rows),
      ...(this.#newest ? { checkpoint: position(this.#newest) } : {}),
    };
  }

  /**
   * {@linkcode status} with the store's position read now (on PostgreSQL
   * from the database, so every replica shows the same).
   *
   * @returns undefined while locked
   */
  async report(): Promise<IntegrityStatus | undefined> {
    const status = this.status();
    const store = await this.#store.position();
    return status && store ? { ...status, store } : status;
  }

  /**
   * The checkpoint to push to the keepers now: the store's own while it is
   * served, else the newest valid one seen, so keepers never go back.
   *
   * @param audit the audit chain's head to anchor
   * @returns the checkpoint, or undefined when there is none to push
   */
  checkpoint(audit?: AuditHead): Checkpoint | undefined {
    if (!this.serving) return this.#newest;
    const own = this.#store.signCheckpoint(audit);
    if (own) this.#newest = own;
    return own;
  }

  /**
   * Accepts the store as it is: anchors its digest at an epoch above every
   * checkpoint seen, and serves it.
   *
   * @param generation the generation the operator saw in `status`
   * @returns what was accepted
   * @throws {ApiError} `api_conflict` when nothing is held or the store is
   *   not at `generation`; `state_not_ready` while locked
   */
  async accept(generation: number): Promise<AcceptedRollback> {
    const rows = this.#store.rows;
    if (!rows) {
      throw new ApiError(ErrorCode.NotReady, "Nexus is locked");
    }
    if (this.serving) {
      throw new ApiError(
        ErrorCode.Conflict,
        "Nothing to accept: the store matches its digest and the keepers' checkpoint",
      );
    }
    if (generation !== rows.generation) {
      throw new ApiError(
        ErrorCode.Conflict,
        `The store holds ${rows.generation} writes, not ${generation}: run spike pilot status and accept what it shows`,
      );
    }
    const behind = this.#newest && position(this.#newest);
    const epoch = Math.max(rows.epoch, this.#newest?.epoch ?? 0) + 1;
    const row = await this.#store.accept(epoch);
    this.#held = undefined;
    this.#newest = undefined;
    this.#log.warn("An operator accepted the store as it is", {
      generation: row.generation,
      epoch,
      checkpoint: behind,
    });
    return {
      epoch,
      generation: row.generation,
      ...(behind ? { checkpoint: behind } : {}),
    };
  }
}
