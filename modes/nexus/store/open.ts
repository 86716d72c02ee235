// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The nexus store: a backend plus, once unlocked with the purpose keys, the
 * keyring, the secret service and the policy store. Meta is readable while
 * locked, so nexus can learn the store id, threshold and commitments before
 * it has the root key. The root key itself never reaches this layer.
 *
 * Unlocking checks the keys against the key-check value, migrates a
 * schema-1 store (first unlock after an upgrade), creates the keyring of a
 * new store, and unwraps the keyring.
 *
 * @module
 */
import { type PurposeKeys, verifyKeyCheck } from "../../../lib/crypto/kdf.ts";
import type { Logger } from "../../../lib/log.ts";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import { SecretService } from "../secrets/secret_service.ts";
import {
  type Sealed,
  type StoreBackend,
  StoreError,
  type StoreMeta,
} from "./backend.ts";
import { prepareDataDir, resolveDataDir } from "./data_dir.ts";
import { type Keyring, newKeyring, openKeyring } from "./keyring.ts";
import { MemoryBackend } from "./memory_backend.ts";
import { PolicyStore } from "./policy_store.ts";
import { RecordCipher } from "./record_cipher.ts";
import { schema1Converter } from "./schema1.ts";
import { SqliteBackend } from "./sqlite_backend.ts";
import type { PoolSettings } from "./postgres_connect.ts";

export { resolveDataDir };

/** Settings of {@linkcode openStore}. */
export interface StoreConfig {
  /** `sqlite` (persistent, one host), `postgres` (replicas) or `memory`. */
  readonly backend: "sqlite" | "postgres" | "memory";
  /**
   * SQLite data directory; default from {@linkcode resolveDataDir}. It is
   * created with mode 0700 if missing.
   */
  readonly dataDir?: string | undefined;
  /** Versions kept per secret (`SPIKE_NEXUS_MAX_SECRET_VERSIONS`). */
  readonly maxVersions: number;
  /** The PostgreSQL pool (postgres backend). */
  readonly postgres?: PoolSettings | undefined;
  /** SQLite busy timeout in ms (default 5000). */
  readonly busyTimeoutMs?: number;
  /** Where a migration reports progress and what it resolved. */
  readonly log?: Logger | undefined;
}

/** The store of one nexus: meta always, data once unlocked. */
export class NexusStore {
  /** The raw backend (for diagnostics and tests; routes use the services). */
  readonly backend: StoreBackend;
  #maxVersions: number;
  #log: Logger | undefined;
  #keyring: Keyring | undefined;
  #secrets: SecretService | undefined;
  #policies: PolicyStore | undefined;

  /**
   * Wraps a backend.
   *
   * @param backend the raw store
   * @param maxVersions versions kept per secret
   * @param log where a migration reports
   */
  constructor(backend: StoreBackend, maxVersions: number, log?: Logger) {
    this.backend = backend;
    this.#maxVersions = maxVersions;
    this.#log = log;
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
   * checking them against the stored key-check value. A schema-1 store is
   * migrated first (one transaction: on failure it stays as it was); a
   * store without a keyring gets one.
   *
   * @param keys the purpose keys (with `schema1` for a schema-1 store)
   * @throws {StoreError} when the store has no meta yet, the keys do not
   * belong to it, or a migration fails; `IntegrityError` when the keyring
   * does not open
   */
  async unlock(keys: PurposeKeys): Promise<void> {
    const meta = await this.backend.readMeta();
    if (!meta) {
      throw new StoreError("The store has no meta yet: initialize it first");
    }
    if (!await verifyKeyCheck(keys, meta.keyCheck)) {
      throw new StoreError("The key does not belong to this store");
    }
    const keyring = await openKeyring(
      keys.keyring,
      this.backend.schema1
        ? await this.#migrate(keys)
        : await this.backend.readKeyring() ??
          await this.backend.initKeyring(await newKeyring(keys.keyring)),
    );
    const records = new RecordCipher(keyring);
    this.#keyring = keyring;
    this.#secrets = new SecretService(this.backend, records, {
      maxVersions: this.#maxVersions,
    });
    this.#policies = new PolicyStore(this.backend, records);
  }

  // Rewrites a schema-1 store in format 2; its keyring keeps the schema-1
  // cipher-API key, so ciphertexts made before still decrypt.
  async #migrate(keys: PurposeKeys): Promise<Sealed> {
    const migration = this.backend.schema1!;
    if (!keys.schema1) {
      throw new StoreError(
        "The store is in schema 1: unlock it with keys derived for schema 1",
      );
    }
    const log = this.#log;
    const sealed = await newKeyring(keys.keyring, keys.schema1.cipher);
    const records = new RecordCipher(await openKeyring(keys.keyring, sealed));
    log?.warn("Migrating the store from schema 1 to format 2", {
      location: this.backend.location,
    });
    const started = performance.now();
    let lastReport = started;
    await migration.run(
      schema1Converter(
        keys.schema1.storage,
        sealed,
        records,
        (message) => log?.warn(message),
      ),
      (done, total) => {
        const progress = { paths: done, of: total };
        log?.debug("Migrating the store", progress);
        if (performance.now() - lastReport < 5000) return;
        lastReport = performance.now();
        log?.info("Migrating the store", progress);
      },
    );
    log?.warn("Store migrated to format 2", {
      ms: Math.round(performance.now() - started),
    });
    return sealed;
  }

  /** Whether {@linkcode unlock} succeeded. */
  get unlocked(): boolean {
    return this.#secrets !== undefined;
  }

  /**
   * The cipher-API key, from the keyring; it never opens a store record.
   *
   * @throws {ApiError} `state_not_ready` while locked
   */
  get cipherKey(): CryptoKey {
    if (!this.#keyring) throw notReady();
    return this.#keyring.cipherKey;
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
    this.#keyring = undefined;
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
 * takes the same time for any number of secrets (unlocking opens only the
 * keyring; a schema-1 store is migrated then, once).
 *
 * @param config backend and settings
 * @returns the store, locked
 * @throws {StoreError} when the SQLite file or the database cannot be
 * opened or has a newer schema; `ConfigError` for a refused data directory
 */
export function openStore(config: StoreConfig): Promise<NexusStore> {
  try {
    if (!Number.isSafeInteger(config.maxVersions) || config.maxVersions < 1) {
      throw new StoreError("Max secret versions must be a whole number from 1");
    }
    if (config.backend === "postgres") {
      if (!config.postgres) {
        throw new StoreError("The postgres backend needs its connection");
      }
      // Loaded only here: a nexus on SQLite or memory never loads the
      // PostgreSQL driver.
      const settings = config.postgres;
      return import("./postgres_backend.ts").then(({ PostgresBackend }) =>
        PostgresBackend.open(settings)
      ).then((backend) =>
        new NexusStore(backend, config.maxVersions, config.log)
      );
    }
    if (config.backend === "memory") {
      return Promise.resolve(
        new NexusStore(new MemoryBackend(), config.maxVersions, config.log),
      );
    }
    const dir = config.dataDir ?? resolveDataDir();
    prepareDataDir(dir);
    const options = config.busyTimeoutMs === undefined
      ? {}
      : { busyTimeoutMs: config.busyTimeoutMs };
    return Promise.resolve(
      new NexusStore(
        SqliteBackend.open(dir, options),
        config.maxVersions,
        config.log,
      ),
    );
  } catch (e) {
    return Promise.reject(e);
  }
}
