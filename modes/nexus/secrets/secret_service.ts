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
 * Every read opens the path's sealed head and checks the path's version
 * rows against it (`secret_head.ts`), and checks the head's revision
 * against the one nexus wrote last (`store/integrity_ledger.ts`); any
 * disagreement, or a record that does not open where it is read, is an
 * {@linkcode IntegrityError}, never another version's data.
 *
 * Path syntax and the reserved `spike/system/` namespace are checked by the
 * API validation layer, not here; this layer only refuses an empty path.
 *
 * @module
 */
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import type { SecretRow, StoreBackend } from "../store/backend.ts";
import { IntegrityError } from "../store/integrity.ts";
import type { WrittenRevisions } from "../store/integrity_ledger.ts";
import {
  listKeys,
  type ListPage,
  type ListResult,
  type ListScope,
} from "../store/key_listing.ts";
import type { RecordCipher } from "../store/record_cipher.ts";
import { KeyedMutex } from "./path_lock.ts";
import {
  checkVersionRows,
  currentOf,
  highestOf,
  isValues,
  oldestOf,
  parseHead,
  type SecretHead,
  type SecretValues,
  timesOf,
  type VersionTimes,
} from "./secret_head.ts";

export type { SecretValues } from "./secret_head.ts";

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

/** Attempts of one operation when another nexus keeps changing the path. */
const MAX_ATTEMPTS = 16;

function notFound(path: string, why: string): ApiError {
  return new ApiError(ErrorCode.NotFound, `Secret "${path}": ${why}`);
}

function badRequest(message: string): ApiError {
  return new ApiError(ErrorCode.BadRequest, message);
}

function keptChanging(path: string): ApiError {
  return new ApiError(
    ErrorCode.Conflict,
    `Secret "${path}" kept changing during the operation; try again`,
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

/** A path as read: its row and its opened, checked head. */
interface SecretState {
  readonly row: SecretRow;
  readonly head: SecretHead;
}

/** What a mutation decided: an optional write and the caller's result. */
interface Plan<T> {
  readonly write?: {
    /** The new head (sealed by the caller for the next revision). */
    readonly head: SecretHead;
    /** Values of a version that moves out of the head into its own row. */
    readonly insert?: { readonly version: number; readonly values: unknown };
    /** Drop version rows below this number. */
    readonly pruneBelow?: number;
  };
  readonly result: T;
}

/** Versioned, encrypted secrets. Errors are {@linkcode ApiError}s. */
export class SecretService {
  #backend: StoreBackend;
  #records: RecordCipher;
  #maxVersions: number;
  #written: () => WrittenRevisions | undefined;
  #locks = new KeyedMutex();

  /**
   * Creates the service.
   *
   * @param backend the raw store
   * @param records seals and opens records with the keyring's data keys
   * @param options settings
   * @param written the revisions nexus wrote last, once it follows them
   */
  constructor(
    backend: StoreBackend,
    records: RecordCipher,
    options: SecretServiceOptions,
    written: () => WrittenRevisions | undefined = () => undefined,
  ) {
    if (!Number.isSafeInteger(options.maxVersions) || options.maxVersions < 1) {
      throw new RangeError("Max secret versions must be a whole number from 1");
    }
    this.#backend = backend;
    this.#records = records;
    this.#maxVersions = options.maxVersions;
    this.#written = written;
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
   * `store_write_failed` when the store cannot persist,
   * `state_integrity_check` when the stored path fails its check
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
    return this.#mutate(path, [], (state) => {
      const head = state?.head;
      const current = head ? currentOf(head) : 0;
      if (options.cas !== undefined && options.cas !== current) {
        throw new ApiError(
          ErrorCode.Conflict,
          `Secret "${path}": current version is ${current}, cas expected ${options.cas}`,
        );
      }
      const highest = head ? highestOf(head) : 0;
      const version = highest + 1;
      const now = new Date().toISOString();
      const lowest = Math.max(
        head?.lowest ?? 1,
        version - this.#maxVersions + 1,
      );
      const kept = head ? head.versions.slice(lowest - head.lowest) : [];
      return {
        write: {
          head: {
            createdTime: head?.createdTime ?? now,
            updatedTime: now,
            maxVersions: this.#maxVersions,
            lowest,
            versions: [...kept, { createdTime: now, deletedTime: null }],
            data: values,
          },
          // The previous highest version's values move to their own row,
          // unless pruning drops that version at once.
          ...(head && highest >= lowest
            ? { insert: { version: highest, values: head.data } }
            : {}),
          ...(head && lowest > head.lowest ? { pruneBelow: lowest } : {}),
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
   * (when asking for 0), a missing or a deleted version;
   * `state_integrity_check` when the stored path fails its check
   */
  async get(path: string, version = 0): Promise<SecretValues> {
    assertPath(path);
    assertVersion(version, "Version");
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const state = await this.#read(path, version);
      if (!state) throw notFound(path, "unknown path");
      const { row, head } = state;
      const target = version === 0 ? currentOf(head) : version;
      if (target === 0) throw notFound(path, "no live version");
      const times = timesOf(head, target);
      if (!times) throw notFound(path, `no version ${target}`);
      if (times.deletedTime !== null) {
        throw notFound(path, `version ${target} is deleted`);
      }
      if (target === highestOf(head)) return head.data;
      if (version !== 0) return await this.#values(path, target, row.record);
      // The current version is below the highest (the highest is deleted):
      // read its row, from the same revision of the path.
      const again = await this.#backend.readSecret(path, target);
      if (again?.revision === row.revision) {
        return await this.#values(path, target, again.record);
      }
    }
    throw keptChanging(path);
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
    return this.#mutate(path, versions, (state) => {
      if (!state) throw notFound(path, "unknown path");
      const current = currentOf(state.head);
      const wanted = versions.length === 0 ? [current] : versions;
      const targets = new Set(wanted.map((v) => (v === 0 ? current : v)));
      return this.#markPlan(state.head, targets, new Date().toISOString());
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
    return this.#mutate(path, versions, (state) => {
      if (!state) throw notFound(path, "unknown path");
      const { head } = state;
      const current = currentOf(head);
      const zero = current !== 0 ? current : highestOf(head);
      const wanted = versions.length === 0 ? [0] : versions;
      const targets = new Set(
        wanted.map((v) => v === 0 ? zero : v).filter((v) => {
          const times = timesOf(head, v);
          return times !== undefined && times.deletedTime !== null;
        }),
      );
      const plan = this.#markPlan(head, targets, null);
      if (!plan.write) throw notFound(path, "no deleted version to undelete");
      return plan;
    });
  }

  /**
   * Reads a secret's metadata: every stored version (deleted included) and
   * the per-path fields. Opens the head only.
   *
   * @param path the secret path
   * @param version the version that must exist and be live; 0 = current
   * @returns the metadata in wire shape
   * @throws {ApiError} `api_not_found` as for {@linkcode get}
   */
  async metadata(path: string, version = 0): Promise<SecretMetadata> {
    assertPath(path);
    assertVersion(version, "Version");
    const state = await this.#read(path);
    if (!state) throw notFound(path, "unknown path");
    const { head } = state;
    const currentVersion = currentOf(head);
    const target = version === 0 ? currentVersion : version;
    if (target === 0) throw notFound(path, "no live version");
    const times = timesOf(head, target);
    if (!times) throw notFound(path, `no version ${target}`);
    if (times.deletedTime !== null) {
      throw notFound(path, `version ${target} is deleted`);
    }
    const versions: Record<string, SecretVersionInfo> = {};
    head.versions.forEach((v, i) => {
      const n = head.lowest + i;
      versions[String(n)] = {
        createdTime: v.createdTime,
        version: n,
        deletedTime: v.deletedTime,
      };
    });
    return {
      versions,
      metadata: {
        currentVersion,
        oldestVersion: oldestOf(head),
        createdTime: head.createdTime,
        updatedTime: head.updatedTime,
        maxVersions: head.maxVersions,
      },
    };
  }

  /**
   * One page of stored paths (all-deleted ones too), by keyset. Decrypts
   * nothing.
   *
   * @param page prefix, cursor and limit (undefined: every path)
   * @param scope what the caller may list; undefined: everything
   * @returns the paths and the next cursor
   */
  list(page: ListPage, scope?: ListScope): Promise<ListResult> {
    return listKeys(
      (range) => this.#backend.listSecretPaths(range),
      page,
      scope,
    );
  }

  /**
   * Checks one path completely: its head, its version rows against the
   * head, and every version record.
   *
   * @param path the path
   * @returns the number of version records opened, or undefined when the
   *   path is gone (removed since it was listed)
   * @throws {IntegrityError} naming what fails
   */
  async verify(path: string): Promise<number | undefined> {
    attempts: for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const state = await this.#read(path);
      if (!state) return undefined;
      const { head, row } = state;
      const highest = highestOf(head);
      for (let v = head.lowest; v < highest; v++) {
        const again = await this.#backend.readSecret(path, v);
        // Written meanwhile: the rows belong to another revision now.
        if (again?.revision !== row.revision) continue attempts;
        await this.#values(path, v, again.record);
      }
      return highest - head.lowest;
    }
    throw keptChanging(path);
  }

  // Reads a path and checks it: the head is not older than the revision
  // nexus wrote last, it opens for the row's revision, and the version rows
  // are exactly those the head keeps below its highest.
  async #read(
    path: string,
    version?: number,
  ): Promise<SecretState | undefined> {
    // Taken before the read: what nexus wrote only grows, so a head read
    // afterwards is at least this new unless it was put back.
    const written = this.#written()?.revisionOf(path) ?? 0;
    const row = await this.#backend.readSecret(path, version);
    if (!row) {
      if (written === 0) return undefined;
      throw new IntegrityError(
        `Secret "${path}" has no head row, but nexus wrote its revision ${written}: the path was removed from the store`,
      );
    }
    if (row.revision < written) {
      throw new IntegrityError(
        `Secret "${path}" head is at revision ${row.revision}, but nexus wrote revision ${written}: the head was rolled back`,
      );
    }
    const head = parseHead(
      await this.#records.open(row.head, {
        table: "secrets",
        key: path,
        n: row.revision,
      }),
      path,
    );
    checkVersionRows(path, head, row.versions);
    return { row, head };
  }

  async #values(
    path: string,
    version: number,
    record: Uint8Array<ArrayBuffer> | undefined,
  ): Promise<SecretValues> {
    if (!record) {
      throw new IntegrityError(
        `Secret "${path}" version ${version}: its head keeps it, its row is missing`,
      );
    }
    const values = await this.#records.open(record, {
      table: "secret_versions",
      key: path,
      n: version,
    });
    if (!isValues(values)) {
      throw new IntegrityError(
        `Secret "${path}" version ${version}: the record holds no value map`,
      );
    }
    return values;
  }

  // Sets the deletion time of the kept versions in `targets` (null:
  // undelete); the updated time moves when the current version does.
  #markPlan(
    head: SecretHead,
    targets: ReadonlySet<number>,
    deletedTime: string | null,
  ): Plan<undefined> {
    let changed = false;
    const versions = head.versions.map((v, i): VersionTimes => {
      if (!targets.has(head.lowest + i)) return v;
      changed = true;
      return { createdTime: v.createdTime, deletedTime };
    });
    if (!changed) return { result: undefined };
    const next = { ...head, versions };
    const moved = currentOf(next) !== currentOf(head);
    return {
      write: {
        head: moved ? { ...next, updatedTime: new Date().toISOString() } : next,
      },
      result: undefined,
    };
  }

  // Serializes writes per path in this process and retries when another
  // writer (another nexus on a shared database) changed the path between
  // our read and our compare-and-set write.
  #mutate<T>(
    path: string,
    versions: readonly number[],
    plan: (state: SecretState | undefined) => Plan<T>,
  ): Promise<T> {
    try {
      assertPath(path);
      if (!Array.isArray(versions)) throw badRequest("Versions must be a list");
      versions.forEach((v) => assertVersion(v, "Version"));
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#locks.run(path, async () => {
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        const state = await this.#read(path);
        const { write, result } = plan(state);
        if (!write) return result;
        const revision = state?.row.revision ?? 0;
        const insert = write.insert;
        const [head, record] = await Promise.all([
          this.#records.seal(write.head, {
            table: "secrets",
            key: path,
            n: revision + 1,
          }),
          insert &&
          this.#records.seal(insert.values, {
            table: "secret_versions",
            key: path,
            n: insert.version,
          }),
        ]);
        const outcome = await this.#backend.writeSecret(path, revision, {
          head,
          ...(insert && record
            ? { insert: { version: insert.version, record } }
            : {}),
          ...(write.pruneBelow === undefined
            ? {}
            : { pruneBelow: write.pruneBelow }),
        });
        if (outcome.ok) return result;
      }
      throw keptChanging(path);
    });
  }
}
