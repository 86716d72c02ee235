// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Per-key serialization of async work inside one process, so concurrent
 * writes to one secret path queue up instead of racing on its revision.
 *
 * @module
 */

/** Runs tasks one at a time per key; different keys run concurrently. */
export class KeyedMutex {
  #tails = new Map<string, Promise<void>>();

  /**
   * Runs `task` after every earlier task for `key` has settled.
   *
   * @param key the key to serialize on
   * @param task the work
   * @returns the task's result
   */
  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key);
    let release!: () => void;
    const done = new Promise<void>((resolve) => release = resolve);
    const tail = previous ? previous.then(() => done) : done;
    this.#tails.set(key, tail);
    try {
      await previous;
      return await task();
    } finally {
      release();
      // The last waiter removes the entry, so idle keys cost no memory.
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }

  /** Number of keys with queued or running tasks. */
  get size(): number {
    return this.#tails.size;
  }
}
