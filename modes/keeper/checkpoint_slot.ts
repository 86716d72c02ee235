// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The store checkpoint a keeper keeps next to its shard, in memory only
 * (`lib/wire/checkpoint.ts`). A keeper cannot check a checkpoint's MAC: it
 * has no root key. It keeps the newest checkpoint of its store, so a nexus
 * that runs on an older copy of the store cannot lower it; a checkpoint of
 * another store replaces it, as that store's shard replaces the shard.
 *
 * @module
 */
import {
  type Checkpoint,
  compareCheckpoints,
} from "../../lib/wire/checkpoint.ts";

/** Holds at most one checkpoint. */
export class CheckpointSlot {
  #held: Checkpoint | undefined;

  /**
   * Offers a checkpoint.
   *
   * @param checkpoint a well-formed checkpoint
   * @returns the checkpoint now held: this one, or a newer one of its store
   */
  offer(checkpoint: Checkpoint): Checkpoint {
    const held = this.#held;
    if (
      !held || held.store !== checkpoint.store ||
      compareCheckpoints(checkpoint, held) >= 0
    ) {
      this.#held = checkpoint;
    }
    return this.#held!;
  }

  /** The held checkpoint, if any. */
  get(): Checkpoint | undefined {
    return this.#held;
  }

  /** Drops the held checkpoint (the keeper left the split). */
  clear(): void {
    this.#held = undefined;
  }
}
