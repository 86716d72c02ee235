// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The keeper's shards, in memory only: the current one, and during a rekey
 * the pending one, the shard of the root key nexus is moving to. Nexus
 * recovers from either, whichever its store can verify, so a crash in the
 * middle of a rekey never strands the store.
 *
 * @module
 */
import { isAllZero, zero } from "../../lib/crypto/zero.ts";

/** A held shard: the 32 share bytes and, when nexus sent it, the x index. */
export interface HeldShard {
  /** The share bytes; owned by the caller (a copy). */
  readonly value: Uint8Array;
  /** The share index (x coordinate), 0 when the sender did not say. */
  readonly index: number;
}

/** What a keeper holds. */
export interface Holdings {
  /** The current shard. */
  readonly current?: HeldShard;
  /** The shard of a rekey's new root key, until nexus commits it. */
  readonly pending?: HeldShard;
}

/** One shard's bytes and index; replacing or clearing zeroes the old bytes. */
class Slot {
  #value = new Uint8Array(32);
  #index = 0;

  set(value: Uint8Array, index: number): void {
    this.#value.set(value);
    this.#index = index;
  }

  get(): HeldShard | undefined {
    if (isAllZero(this.#value)) return undefined;
    return { value: this.#value.slice(), index: this.#index };
  }

  clear(): void {
    zero(this.#value);
    this.#index = 0;
  }
}

/** The current shard and a pending one. */
export class ShardSlot {
  readonly #current = new Slot();
  readonly #pending = new Slot();

  /**
   * Stores `value` (32 bytes, not all zero) as the current shard, and
   * drops a pending one: nexus sends a current shard only for the root key
   * its store needs, so a pending shard is then either that shard (the
   * rekey committed) or one of a rekey that did not.
   *
   * @param value the share bytes; the caller zeroes its own copy
   * @param index the share index, 0 when unknown
   */
  set(value: Uint8Array, index: number): void {
    this.#current.set(value, index);
    this.#pending.clear();
  }

  /**
   * Stores `value` as the pending shard; the current one stays.
   *
   * @param value the share bytes; the caller zeroes its own copy
   * @param index the share index
   */
  setPending(value: Uint8Array, index: number): void {
    this.#pending.set(value, index);
  }

  /**
   * What the keeper holds. The returned bytes are copies the caller must
   * zero.
   */
  get(): Holdings {
    const current = this.#current.get();
    const pending = this.#pending.get();
    return {
      ...(current ? { current } : {}),
      ...(pending ? { pending } : {}),
    };
  }

  /** Zeroes both shards. */
  clear(): void {
    this.#current.clear();
    this.#pending.clear();
  }
}
