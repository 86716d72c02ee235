// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The root key, in memory only. Nexus is "locked" until a verified key is
 * set and the store has been unlocked with the purpose keys derived from
 * it (the store keeps the keyring those keys unwrap).
 *
 * @module
 */
import type { PurposeKeys } from "../../lib/crypto/kdf.ts";
import { zero } from "../../lib/crypto/zero.ts";

/** Holds the root key once it is known and verified. */
export class RootKeyState {
  #key: Uint8Array | undefined;
  readonly #activate: (keys: PurposeKeys) => Promise<void>;
  #activating: Promise<void> | undefined;

  /**
   * @param activate readies everything that needs the keys (opens the
   * store, loads policies) before nexus reports itself unlocked
   */
  constructor(activate: (keys: PurposeKeys) => Promise<void> = async () => {}) {
    this.#activate = activate;
  }

  /** Whether nexus has its root key. */
  get unlocked(): boolean {
    return this.#key !== undefined;
  }

  /**
   * Sets a verified root key and activates it; nexus counts as unlocked
   * only once activation is done. The state takes ownership of the bytes.
   *
   * @param key the 32-byte root key
   * @param keys purpose keys derived from it
   */
  unlock(key: Uint8Array, keys: PurposeKeys): Promise<void> {
    // Recovery and restore may race; the first key activates, later ones
    // (the same verified key) are dropped.
    if (this.#key || this.#activating) {
      zero(key);
      return this.#activating ?? Promise.resolve();
    }
    this.#activating = this.#activate(keys).then(() => {
      this.#key = key;
    }, (e) => {
      zero(key);
      throw e;
    }).finally(() => {
      this.#activating = undefined;
    });
    return this.#activating;
  }

  /**
   * Runs `fn` with a copy of the root key, zeroed afterwards.
   *
   * @param fn work that needs the raw key (splitting shards)
   * @returns what `fn` returns
   */
  async withKey<T>(fn: (key: Uint8Array) => Promise<T>): Promise<T> {
    if (!this.#key) throw new Error("Nexus is locked");
    const copy = this.#key.slice();
    try {
      return await fn(copy);
    } finally {
      zero(copy);
    }
  }

  /**
   * Swaps in a new root key (a rekey's commit) and zeroes the old one. The
   * state takes ownership of the bytes.
   *
   * @param key the new 32-byte root key, already verified and committed
   * @throws {Error} while locked
   */
  replace(key: Uint8Array): void {
    if (!this.#key) {
      zero(key);
      throw new Error("Nexus is locked");
    }
    zero(this.#key);
    this.#key = key;
  }

  /** Zeroes the key (shutdown). */
  clear(): void {
    zero(this.#key);
    this.#key = undefined;
  }
}
