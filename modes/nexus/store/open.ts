// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The nexus store: a backend plus, once unlocked with the purpose keys, the
 * secret service and the policy store. Meta is readable while locked, so
 * nexus can learn the store id, threshold and commitments before it has the
 * root key. The root key itself never reaches this layer.
 *
 * @module
 */
import { type PurposeKeys, verifyKeyCheck } from "../../../lib/crypto/kdf.ts";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import { SecretService } from "../secrets/secret_service.ts";
import { type StoreBackend, StoreError, type StoreMeta } from "./backend.ts";
import { prepareDataDir, resolveDataDir } from "./data_dir.ts";

export { resolveDataDir };
import { MemoryBackend } from "./memory_backend.ts";
import { PolicyStore } from "./policy_store.ts";
import { SqliteBackend } from "./sqlite_backend.ts";

/** Settings of {@linkcode openStore}. */
export interface StoreConfig {
  /** `sqlite` (persistent) or `memory`. */
  readonly backend: "sqlite" | "memory";
  /**
   * SQLite data directory; default from {@linkcode resolveDataDir}. It is
   * created with mode 0700 if missing.
   */
  readonly dataDir?: string | undefined;
  /** Versions kept per secret (`SPIKE_NEXUS_MAX_SECRET_VERSIONS`). */
  readonly maxVersions: number;
  /** SQLite busy timeout in ms (default 5000). */
  readonly busyTimeoutMs?: number;
}

/** The store of one nexus: meta always, data once unlocked. */
export class NexusStore {
  /** The raw backend (for diagnostics and tests; routes use the services). */
  readonly backend: StoreBackend;
  #maxVersions: number;
  #secrets: SecretService | undefined;
  #policies: PolicyStore | undefined;

  /**
   * Wraps a backend.
   *
   * @param backend the raw store
   * @param maxVersions versions kept per secret
   */
  constructor(backend: StoreBackend, maxVersions: number) {
    this.backend = backend;
    this.#maxVersions = maxVersions;
  }

  /**
   * The store meta; needs no key.
   *
   * @returns the meta, or undefined for a store that was never initialized
   */
  readMeta(): Promise<StoreMeta | undefined> {
    return this.backend.readMeta();
  }

  /**
   * Writes the store meta of a new store (once).
   *
   * @param meta the meta
   * @throws {StoreError} when meta exists already or is malformed
   */
  initMeta(meta: StoreMeta): Promise<void> {
    return this.backend.initMeta(meta);
  }

  /**
   * Enables the data services with keys derived from the root key, after
   * checking them against the stored key-check value.
   *
   * @param keys the purpose keys
   * @throws {StoreError} when the store has no meta yet or the keys do not
   * belong to it
   */
  async unlock(keys: PurposeKeys): Promise<void> {
    const meta = await this.backend.readMeta();
    if (!meta) {
      throw new StoreError("The store has no meta yet: initialize it first");
    }
    if (!await verifyKeyCheck(keys, meta.keyCheck)) {
      throw new StoreError("The key does not belong to this store");
    }
    this.#secrets = new SecretService(this.backend, keys.storage, {
      maxVersions: this.#maxVersions,
    });
    this.#policies = new PolicyStore(this.backend, keys.storage);
  }

  /** Whether {@linkcode unlock} succeeded. */
  get unlocked(): boolean {
    return this.#secrets !== undefined;
  }

  /**
   * The secret service.
   *
   * @throws {ApiError} `state_not_ready` while locked
   */
  get secrets(): SecretService {
    if (!this.#secrets) throw notReady();
    return this.#secrets;
  }

  /**
   * The policy store.
   *
   * @throws {ApiError} `state_not_ready` while locked
   */
  get policies(): PolicyStore {
    if (!this.#policies) throw notReady();
    return this.#policies;
  }

  /** Commits queued writes and closes the backend. */
  async close(): Promise<void> {
    this.#secrets = undefined;
    this.#policies = undefined;
    await this.backend.close();
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function notReady(): ApiError {
  return new ApiError(
    ErrorCode.NotReady,
    "The store is locked: no root key yet",
  );
}

/**
 * Opens the nexus store. Opening reads no secret and decrypts nothing, so it
 * takes the same time for any number of secrets.
 *
 * @param config backend and settings
 * @returns the store, locked
 * @throws {StoreError} when the SQLite file cannot be opened or has a newer
 * schema; `ConfigError` for a refused data directory
 */
export function openStore(config: StoreConfig): Promise<NexusStore> {
  try {
    if (!Number.isSafeInteger(config.maxVersions) || config.maxVersions < 1) {
      throw new StoreError("Max secret versions must be a whole number from 1");
    }
    if (config.backend === "memory") {
      return Promise.resolve(
        new NexusStore(new MemoryBackend(), config.maxVersions),
      );
    }
    const dir = config.dataDir ?? resolveDataDir();
    prepareDataDir(dir);
    const options = config.busyTimeoutMs === undefined
      ? {}
      : { busyTimeoutMs: config.busyTimeoutMs };
    return Promise.resolve(
      new NexusStore(SqliteBackend.open(dir, options), config.maxVersions),
    );
  } catch (e) {
    return Promise.reject(e);
  }
}
