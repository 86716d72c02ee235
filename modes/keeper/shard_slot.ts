// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The keeper's one shard, in memory only.
 *
 * @module
 */
import { isAllZero, zero } from "../../lib/crypto/zero.ts";

/** A held shard: the 32 share bytes and, when nexus sent it, the x index. */
export interface HeldShard {
  /** The share bytes; owned by the slot. */
  readonly value: Uint8Array;
  /** The share index (x coordinate), 0 when the sender did not say. */
  readonly index: number;
}

/** Holds at most one shard; replacing or clearing zeroes the old bytes. */
export class ShardSlot {
  #value = new Uint8Array(32);
  #index = 0;

  /**
   * Stores a copy of `value` (32 bytes, not all zero) with its index.
   *
   * @param value the share bytes; the caller zeroes its own copy
   * @param index the share index, 0 when unknown
   */
  set(value: Uint8Array, index: number): void {
    this.#value.set(value);
    this.#index = index;
  }

  /**
   * The held shard, or undefined when the slot is empty. The returned
   * bytes are a copy the caller must zero.
   */
  get(): HeldShard | undefined {
    if (isAllZero(this.#value)) return undefined;
    return { value: this.#value.slice(), index: this.#index };
  }

  /** Zeroes the slot. */
  clear(): void {
    zero(this.#value);
    this.#index = 0;
  }
}
