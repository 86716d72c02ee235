// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A secret as read from nexus: its values held as bytes, turned into
 * strings only when asked, and zeroed by {@linkcode Secret.zero} or at the
 * end of a `using` block.
 *
 * @module
 */

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Overwrites byte arrays with zeros, for values the caller took out of a
 * {@linkcode Secret} or read with `getValue`. Safe on `undefined`.
 *
 * @param buffers the arrays to clear
 *
 * @example Clearing a value after use
 * ```ts
 * import { zero } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const password = new TextEncoder().encode("s3cr3t");
 * zero(password);
 * assert.deepEqual([...password], [0, 0, 0, 0, 0, 0]);
 * ```
 */
export function zero(...buffers: (Uint8Array | undefined)[]): void {
  for (const b of buffers) b?.fill(0);
}

/**
 * The values of one version of a secret. The bytes live in this object
 * only; {@linkcode Secret.zero} (or `using`) clears them.
 *
 * @example Reading values as bytes or, when asked, as text
 * ```ts
 * import { Secret } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const encode = (s: string) => new TextEncoder().encode(s);
 * {
 *   using secret = new Secret("apps/db", new Map([
 *     ["user", encode("app")],
 *     ["password", encode("s3cr3t")],
 *   ]), 3);
 *   assert.deepEqual(secret.keys(), ["password", "user"]);
 *   assert.equal(secret.text("user"), "app");
 *   assert.equal(secret.bytes("password")?.length, 6);
 *   assert.equal(secret.version, 3);
 * }
 * ```
 */
export class Secret implements Disposable {
  /** The secret's path. */
  readonly path: string;
  /**
   * The version these values belong to, when known: set when a version was
   * asked for and by `watch`; nexus does not report it for a plain `get`.
   */
  readonly version: number | undefined;
  readonly #values: Map<string, Uint8Array>;

  /**
   * Wraps values; the secret takes ownership of the byte arrays.
   *
   * @param path the secret's path
   * @param values key -> UTF-8 bytes
   * @param version the version, when known
   */
  constructor(
    path: string,
    values: Map<string, Uint8Array>,
    version?: number,
  ) {
    this.path = path;
    this.#values = values;
    this.version = version;
  }

  /**
   * The keys of the secret, sorted.
   *
   * @returns the keys
   */
  keys(): string[] {
    return [...this.#values.keys()].sort();
  }

  /**
   * Whether the secret has a key.
   *
   * @param key the key
   * @returns true when present
   */
  has(key: string): boolean {
    return this.#values.has(key);
  }

  /**
   * A value as UTF-8 bytes: a view owned by this secret, cleared by
   * {@linkcode Secret.zero}; copy it to keep it longer.
   *
   * @param key the key
   * @returns the bytes, or undefined when the key is absent
   */
  bytes(key: string): Uint8Array | undefined {
    return this.#values.get(key);
  }

  /**
   * A value as a string. Strings cannot be zeroed: ask for one only where
   * an API needs it (a database driver's password option).
   *
   * @param key the key
   * @returns the text, or undefined when the key is absent
   */
  text(key: string): string | undefined {
    const bytes = this.#values.get(key);
    return bytes === undefined ? undefined : decoder.decode(bytes);
  }

  /**
   * Every value as a string, for APIs that take a plain object.
   *
   * @returns key -> text
   */
  toRecord(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const key of this.keys()) out[key] = this.text(key)!;
    return out;
  }

  /** Overwrites every value with zeros; the secret is empty afterwards. */
  zero(): void {
    for (const bytes of this.#values.values()) bytes.fill(0);
    this.#values.clear();
  }

  /** Same as {@linkcode Secret.zero}, for `using`. */
  [Symbol.dispose](): void {
    this.zero();
  }
}
