// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Versioned secrets over a {@linkcode StoreBackend}: upstream SPIKE's secret
 * model (put, get, delete, undelete, metadata, list) with its flaws fixed:
 * pruned versions are really removed, version numbers are never reused,
 * writes are compare-and-set (optional `cas` for callers, always internally),
 * and undeleting with the CLI default `[0]` revives an all-deleted secret.
 *
 * Derived fields (no stored copy to drift):
 * - current version: the highest version not deleted, 0 if none;
 * - oldest version: the lowest version not deleted, 0 if none.
 *
 * Path syntax and the reserved `spike/system/` namespace are checked by the
 * API validation layer, not here; this layer only refuses an empty path.
 *
 * @module
 */
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import type {
  DeletionChange,
  SecretState,
  SecretVersionMetaRow,
  SecretWrite,
  StoreBackend,
} from "../store/backend.ts";
import { FieldCipher, type FieldLocation } from "../store/field_cipher.ts";
import { KeyedMutex } from "./path_lock.ts";

/** A secret's value map. */
export type SecretValues = Record<string, string>;

/** Options of {@linkcode SecretService.put}. */
export interface PutOptions {
  /**
   * Write only if the current version equals this number; 0 means the path
   * has no live version (unknown, or every version deleted).
   */
  readonly cas?: number;
}

/** One version in {@linkcode SecretMetadata}. */
export interface SecretVersionInfo {
  /** RFC 3339 creation time. */
  readonly createdTime: string;
  /** The version number. */
  readonly version: number;
  /** RFC 3339 deletion time, or null when live. */
  readonly deletedTime: string | null;
}

/** The wire shape of a secret's metadata (upstream field names). */
export interface SecretMetadata {
  /** Every stored version, deleted ones included, keyed by number. */
  readonly versions: Record<string, SecretVersionInfo>;
  /** Per-path fields. */
  readonly metadata: {
    readonly currentVersion: number;
    readonly oldestVersion: number;
    readonly createdTime: string;
    readonly updatedTime: string;
    readonly maxVersions: number;
  };
}

/** Settings of a {@linkcode SecretService}. */
export interface SecretServiceOptions {
  /** Versions kept per path (`SPIKE_NEXUS_MAX_SECRET_VERSIONS`), at least 1. */
  readonly maxVersions: number;
}

/** Attempts of one write when another nexus keeps changing the same path. */
const MAX_ATTEMPTS = 16;

function notFound(path: string, why: string): ApiError {
  return new ApiError(ErrorCode.NotFound, `Secret "${path}": ${why}`);
}

function badRequest(message: string): ApiError {
  return new ApiError(ErrorCode.BadRequest, message);
}

function integrity(path: string, version: number): ApiError {
  return new ApiError(
    ErrorCode.Internal,
    `Secret "${path}" version ${version}: the deletion flag disagrees with the encrypted deletion time`,
  );
}

function assertPath(path: string): void {
  if (typeof path !== "string" || path.length === 0) {
    throw badRequest("Secret path must not be empty");
  }
}

function assertVersion(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw badRequest(`${what} must be a whole number from 0, got ${v}`);
  }
}

function isValues(value: unknown): value is SecretValues {
  return typeof value === "object" && value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === "string");
}

function currentOf(versions: readonly SecretVersionMetaRow[]): number {
  let current = 0;
  for (const v of versions) {
    if (!v.deleted && v.version > current) current = v.version;
  }
  return current;
}

function oldestOf(versions: readonly SecretVersionMetaRow[]): number {
  let oldest = 0;
  for (const v of versions) {
    if (!v.deleted && (oldest === 0 || v.version < oldest)) oldest = v.version;
  }
  return oldest;
}

/** What a mutation decided: an optional write and the caller's result. */
interface Plan<T> {
  readonly write?: SecretWrite;
  readonly result: T;
}

/** Versioned, encrypted secrets. Errors are {@linkcode ApiError}s. */
export class SecretService {
  #backend: StoreBackend;
  #cipher: FieldCipher;
  #maxVersions: number;
  #locks = new KeyedMutex();

  /**
   * Creates the service.
   *
   * @param backend the raw store
   * @param storageKey the storage purpose key
   * @param options settings
   */
  constructor(
    backend: StoreBackend,
    storageKey: CryptoKey,
    options: SecretServiceOptions,
  ) {
    if (!Number.isSafeInteger(options.maxVersions) || options.maxVersions < 1) {
      throw new RangeError("Max secret versions must be a whole number from 1");
    }
    this.#backend = backend;
    this.#cipher = new FieldCipher(storageKey);
    this.#maxVersions = options.maxVersions;
  }

  /**
   * Stores `values` as a new version. The number is one above the highest
   * stored version; versions beyond the max (lowest numbers first, deleted
   * or not) are removed for good.
   *
   * @param path the secret path (non-empty)
   * @param values the value map (may be empty)
   * @param options compare-and-set
   * @returns the new version number
   * @throws {ApiError} `api_conflict` when `cas` does not match,
   * `api_bad_request` for an empty path or non-string values,
   * `store_write_failed` when the store cannot persist
   */
  put(
    path: string,
    values: SecretValues,
    options: PutOptions = {},
  ): Promise<number> {
    try {
      if (!isValues(values)) throw badRequest("Secret values must be strings");
      if (options.cas !== undefined) assertVersion(options.cas, "cas");
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#mutate(path, [], async (state) => {
      const versions = state?.versions ?? [];
      const current = currentOf(versions);
      if (options.cas !== undefined) {
        if (options.cas !== current) {
          throw new ApiError(
            ErrorCode.Conflict,
            `Secret "${path}": current version is ${current}, cas expected ${options.cas}`,
          );
        }
      }
      const version = versions.reduce((m, v) => Math.max(m, v.version), 0) + 1;
      const now = new Date().toISOString();
      const at = (field: string): FieldLocation => ({
        table: "secret_versions",
        key: path,
        version,
        field,
      });
      const [data, createdTime, deletedTime, head] = await Promise.all([
        this.#cipher.seal(values, at("data")),
        this.#cipher.seal(now, at("createdTime")),
        this.#cipher.seal(null, at("deletedTime")),
        this.#head(path, state, now, { touch: true, applyMax: true }),
      ]);
      return {
        write: {
          head,
          insert: { version, deleted: false, data, createdTime, deletedTime },
          keepVersions: this.#maxVersions,
        },
        result: version,
      };
    });
  }

  /**
   * Reads one version's values.
   *
   * @param path the secret path
   * @param version the version; 0 = current
   * @returns the value map
   * @throws {ApiError} `api_not_found` for an unknown path, no live version
   * (when asking for 0), a missing or a deleted version; `api_internal_error`
   * when the stored value does not decrypt
   */
  async get(path: string, version = 0): Promise<SecretValues> {
    assertPath(path);
    assertVersion(version, "Version");
    const row = await this.#backend.readSecretVersion(path, version);
    if (!row) {
      throw notFound(
        path,
        version === 0 ? "no live version" : `no version ${version}`,
      );
    }
    if (row.deleted) throw notFound(path, `version ${row.version} is deleted`);
    const at = (field: string): FieldLocation => ({
      table: "secret_versions",
      key: path,
      version: row.version,
      field,
    });
    const [values, deletedTime] = await Promise.all([
      this.#cipher.open(row.data, at("data")),
      this.#cipher.open(row.deletedTime, at("deletedTime")),
    ]);
    if (deletedTime !== null) throw integrity(path, row.version);
    if (!isValues(values)) throw integrity(path, row.version);
    return values;
  }

  /**
   * Soft-deletes versions. An empty list means the current version; 0 in
   * the list means the current version; unknown versions are ignored;
   * deleting a deleted version refreshes its deletion time.
   *
   * @param path the secret path
   * @param versions the versions to delete
   * @throws {ApiError} `api_not_found` for an unknown path
   */
  delete(path: string, versions: readonly number[] = []): Promise<void> {
    return this.#mutate(path, versions, async (state) => {
      if (!state) throw notFound(path, "unknown path");
      const current = currentOf(state.versions);
      const wanted = versions.length === 0 ? [current] : versions;
      const targets = new Set(wanted.map((v) => (v === 0 ? current : v)));
      const existing = state.versions.filter((v) => targets.has(v.version));
      if (existing.length === 0) return { result: undefined };
      const now = new Date().toISOString();
      const deletions = await Promise.all(
        existing.map(async (v): Promise<DeletionChange> => ({
          version: v.version,
          deleted: true,
          deletedTime: await this.#cipher.seal(
            now,
            this.#versionAt(path, v.version, "deletedTime"),
          ),
        })),
      );
      return this.#deletionPlan(path, state, deletions, now);
    });
  }

  /**
   * Restores soft-deleted versions. An empty list means `[0]`; 0 means the
   * current version, or, when every version is deleted, the highest deleted
   * version (so the CLI default revives an all-deleted secret).
   *
   * @param path the secret path
   * @param versions the versions to restore
   * @throws {ApiError} `api_not_found` for an unknown path or when nothing
   * was restored (e.g. the versions are not deleted)
   */
  undelete(path: string, versions: readonly number[] = []): Promise<void> {
    return this.#mutate(path, versions, async (state) => {
      if (!state) throw notFound(path, "unknown path");
      const current = currentOf(state.versions);
      let highestDeleted = 0;
      for (const v of state.versions) {
        if (v.deleted) highestDeleted = Math.max(highestDeleted, v.version);
      }
      const wanted = versions.length === 0 ? [0] : versions;
      const targets = new Set(
        wanted.map((v) =>
          v !== 0 ? v : current !== 0 ? current : highestDeleted
        ),
      );
      const restorable = state.versions.filter((v) =>
        v.deleted && targets.has(v.version)
      );
      if (restorable.length === 0) {
        throw notFound(path, "no deleted version to undelete");
      }
      const deletions = await Promise.all(
        restorable.map(async (v): Promise<DeletionChange> => ({
          version: v.version,
          deleted: false,
          deletedTime: await this.#cipher.seal(
            null,
            this.#versionAt(path, v.version, "deletedTime"),
          ),
        })),
      );
      return this.#deletionPlan(
        path,
        state,
        deletions,
        new Date().toISOString(),
      );
    });
  }

  /**
   * Reads a secret's metadata: every stored version (deleted included) and
   * the per-path fields.
   *
   * @param path the secret path
   * @param version the version that must exist and be live; 0 = current
   * @returns the metadata in wire shape
   * @throws {ApiError} `api_not_found` as for {@linkcode get}
   */
  async metadata(path: string, version = 0): Promise<SecretMetadata> {
    assertPath(path);
    assertVersion(version, "Version");
    const state = await this.#backend.readSecret(path);
    if (!state) throw notFound(path, "unknown path");
    const currentVersion = currentOf(state.versions);
    const target = version === 0 ? currentVersion : version;
    const row = state.versions.find((v) => v.version === target);
    if (target === 0) throw notFound(path, "no live version");
    if (!row) throw notFound(path, `no version ${target}`);
    if (row.deleted) throw notFound(path, `version ${target} is deleted`);
    const headAt = (field: string): FieldLocation => ({
      table: "secrets",
      key: path,
      field,
    });
    const [createdTime, updatedTime, maxVersions, versionInfos] = await Promise
      .all([
        this.#cipher.open(state.head.createdTime, headAt("createdTime")),
        this.#cipher.open(state.head.updatedTime, headAt("updatedTime")),
        this.#cipher.open(state.head.maxVersions, headAt("maxVersions")),
        Promise.all(state.versions.map((v) => this.#versionInfo(path, v))),
      ]);
    const versions: Record<string, SecretVersionInfo> = {};
    for (const info of versionInfos) versions[String(info.version)] = info;
    return {
      versions,
      metadata: {
        currentVersion,
        oldestVersion: oldestOf(state.versions),
        createdTime: String(createdTime),
        updatedTime: String(updatedTime),
        maxVersions: Number(maxVersions),
      },
    };
  }

  /**
   * Every stored path, sorted, including paths whose versions are all
   * deleted. Decrypts nothing.
   *
   * @returns the paths
   */
  listPaths(): Promise<string[]> {
    return this.#backend.listSecretPaths();
  }

  async #versionInfo(
    path: string,
    v: SecretVersionMetaRow,
  ): Promise<SecretVersionInfo> {
    const [createdTime, deletedTime] = await Promise.all([
      this.#cipher.open(
        v.createdTime,
        this.#versionAt(path, v.version, "createdTime"),
      ),
      this.#cipher.open(
        v.deletedTime,
        this.#versionAt(path, v.version, "deletedTime"),
      ),
    ]);
    if ((deletedTime !== null) !== v.deleted) throw integrity(path, v.version);
    return {
      createdTime: String(createdTime),
      version: v.version,
      deletedTime: deletedTime === null ? null : String(deletedTime),
    };
  }

  #versionAt(path: string, version: number, field: string): FieldLocation {
    return { table: "secret_versions", key: path, version, field };
  }

  // The head of a write. The created time is sealed once, when the path is
  // created; the updated time changes with the current version; the max
  // versions record what the last put applied.
  async #head(
    path: string,
    state: SecretState | undefined,
    now: string,
    change: { touch: boolean; applyMax: boolean },
  ): Promise<SecretWrite["head"]> {
    const seal = (value: unknown, field: string) =>
      this.#cipher.seal(value, { table: "secrets", key: path, field });
    const [createdTime, updatedTime, maxVersions] = await Promise.all([
      state ? state.head.createdTime : seal(now, "createdTime"),
      state && !change.touch
        ? state.head.updatedTime
        : seal(now, "updatedTime"),
      state && !change.applyMax
        ? state.head.maxVersions
        : seal(this.#maxVersions, "maxVersions"),
    ]);
    return { createdTime, updatedTime, maxVersions };
  }

  async #deletionPlan(
    path: string,
    state: SecretState,
    deletions: DeletionChange[],
    now: string,
  ): Promise<Plan<undefined>> {
    const changed = new Map(deletions.map((d) => [d.version, d.deleted]));
    const after = state.versions.map((v) => ({
      ...v,
      deleted: changed.get(v.version) ?? v.deleted,
    }));
    const head = await this.#head(path, state, now, {
      touch: currentOf(after) !== currentOf(state.versions),
      applyMax: false,
    });
    return { write: { head, deletions }, result: undefined };
  }

  // Serializes writes per path in this process and retries when another
  // writer (another nexus on a shared database) changed the path between
  // our read and our compare-and-set write.
  #mutate<T>(
    path: string,
    versions: readonly number[],
    plan: (state: SecretState | undefined) => Promise<Plan<T>>,
  ): Promise<T> {
    try {
      assertPath(path);
      if (!Array.isArray(versions)) throw badRequest("Versions must be a list");
      versions.forEach((v) => assertVersion(v, "Version"));
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#locks.run(path, async () => {
      for (let attempt = 1;; attempt++) {
        const state = await this.#backend.readSecret(path);
        const { write, result } = await plan(state);
        if (!write) return result;
        const outcome = await this.#backend.writeSecret(
          path,
          state?.head.revision ?? 0,
          write,
        );
        if (outcome.ok) return result;
        if (attempt >= MAX_ATTEMPTS) {
          throw new ApiError(
            ErrorCode.Conflict,
            `Secret "${path}" kept changing during the write; try again`,
          );
        }
      }
    });
  }
}
