// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * In-memory {@linkcode StoreBackend}: the same rows and rules as SQLite,
 * gone when the process ends. Rows are copied in and out so no caller can
 * change stored bytes through a shared buffer.
 *
 * @module
 */
import {
  assertStoreMeta,
  compareCodePoints,
  type PolicyRow,
  type SecretHeadRow,
  type SecretState,
  type SecretVersionRow,
  type SecretWrite,
  type StoreBackend,
  StoreError,
  type StoreMeta,
  type WriteResult,
} from "./backend.ts";

interface StoredSecret {
  head: SecretHeadRow;
  /** Version number -> row. */
  versions: Map<number, SecretVersionRow>;
}

const copy = (b: Uint8Array<ArrayBuffer>) => b.slice();

function copyVersion(row: SecretVersionRow): SecretVersionRow {
  return {
    version: row.version,
    deleted: row.deleted,
    data: copy(row.data),
    createdTime: copy(row.createdTime),
    deletedTime: copy(row.deletedTime),
  };
}

function copyPolicy(row: PolicyRow): PolicyRow {
  return {
    name: row.name,
    spiffeIdPattern: copy(row.spiffeIdPattern),
    pathPattern: copy(row.pathPattern),
    permissions: copy(row.permissions),
    createdAt: copy(row.createdAt),
    updatedAt: copy(row.updatedAt),
  };
}

function copyMeta(meta: StoreMeta): StoreMeta {
  return {
    storeId: copy(meta.storeId),
    keyCheck: copy(meta.keyCheck),
    threshold: meta.threshold,
    shareCount: meta.shareCount,
    commitments: meta.commitments.map(copy),
  };
}

/** A backend that keeps everything in process memory. */
export class MemoryBackend implements StoreBackend {
  /** Always `memory`. */
  readonly kind = "memory";
  /** Always undefined: nothing is on disk. */
  readonly location = undefined;
  #meta: StoreMeta | undefined;
  #secrets = new Map<string, StoredSecret>();
  #policies = new Map<string, PolicyRow>();
  #sortedPaths: string[] | undefined;
  #closed = false;

  // Runs `fn` on an open store; a throw becomes a rejection, as with SQLite.
  #run<T>(fn: () => T): Promise<T> {
    try {
      if (this.#closed) throw new StoreError("Store is closed");
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** See {@linkcode StoreBackend.readMeta}. */
  readMeta(): Promise<StoreMeta | undefined> {
    return this.#run(() => this.#meta && copyMeta(this.#meta));
  }

  /** See {@linkcode StoreBackend.initMeta}. */
  initMeta(meta: StoreMeta): Promise<void> {
    return this.#run(() => {
      assertStoreMeta(meta);
      if (this.#meta) throw new StoreError("Store meta is already initialized");
      this.#meta = copyMeta(meta);
    });
  }

  /** See {@linkcode StoreBackend.readSecret}. */
  readSecret(path: string): Promise<SecretState | undefined> {
    return this.#run(() => {
      const stored = this.#secrets.get(path);
      if (!stored) return undefined;
      const versions = [...stored.versions.values()]
        .sort((a, b) => a.version - b.version)
        .map((v) => ({
          version: v.version,
          deleted: v.deleted,
          createdTime: copy(v.createdTime),
          deletedTime: copy(v.deletedTime),
        }));
      return {
        head: {
          revision: stored.head.revision,
          createdTime: copy(stored.head.createdTime),
          updatedTime: copy(stored.head.updatedTime),
          maxVersions: copy(stored.head.maxVersions),
        },
        versions,
      };
    });
  }

  /** See {@linkcode StoreBackend.readSecretVersion}. */
  readSecretVersion(
    path: string,
    version: number,
  ): Promise<SecretVersionRow | undefined> {
    return this.#run(() => {
      const stored = this.#secrets.get(path);
      if (!stored) return undefined;
      let row: SecretVersionRow | undefined;
      if (version === 0) {
        for (const v of stored.versions.values()) {
          if (!v.deleted && (!row || v.version > row.version)) row = v;
        }
      } else {
        row = stored.versions.get(version);
      }
      return row && copyVersion(row);
    });
  }

  /** See {@linkcode StoreBackend.writeSecret}. */
  writeSecret(
    path: string,
    expectedRevision: number,
    change: SecretWrite,
  ): Promise<WriteResult> {
    return this.#run((): WriteResult => {
      const stored = this.#secrets.get(path);
      if ((stored?.head.revision ?? 0) !== expectedRevision) {
        return { ok: false, conflict: true };
      }
      // Build the new version map first, so a rejected change leaves no trace.
      const versions = new Map(stored?.versions);
      if (change.insert) {
        if (versions.has(change.insert.version)) {
          return { ok: false, conflict: true };
        }
        versions.set(change.insert.version, copyVersion(change.insert));
      }
      for (const d of change.deletions ?? []) {
        const row = versions.get(d.version);
        if (!row) return { ok: false, conflict: true };
        versions.set(d.version, {
          ...row,
          deleted: d.deleted,
          deletedTime: copy(d.deletedTime),
        });
      }
      if (change.keepVersions !== undefined) {
        const numbers = [...versions.keys()].sort((a, b) => a - b);
        const excess = numbers.length - change.keepVersions;
        for (let i = 0; i < excess; i++) versions.delete(numbers[i]!);
      }
      const revision = expectedRevision + 1;
      if (!stored) this.#sortedPaths = undefined;
      this.#secrets.set(path, {
        head: {
          revision,
          createdTime: copy(change.head.createdTime),
          updatedTime: copy(change.head.updatedTime),
          maxVersions: copy(change.head.maxVersions),
        },
        versions,
      });
      return { ok: true, revision };
    });
  }

  /** See {@linkcode StoreBackend.listSecretPaths}. */
  listSecretPaths(): Promise<string[]> {
    return this.#run(() => {
      this.#sortedPaths ??= [...this.#secrets.keys()].sort(compareCodePoints);
      return [...this.#sortedPaths];
    });
  }

  /** See {@linkcode StoreBackend.upsertPolicy}. */
  upsertPolicy(row: PolicyRow): Promise<PolicyRow> {
    return this.#run(() => {
      const existing = this.#policies.get(row.name);
      const stored = copyPolicy(
        existing ? { ...row, createdAt: existing.createdAt } : row,
      );
      this.#policies.set(row.name, stored);
      return copyPolicy(stored);
    });
  }

  /** See {@linkcode StoreBackend.readPolicy}. */
  readPolicy(name: string): Promise<PolicyRow | undefined> {
    return this.#run(() => {
      const row = this.#policies.get(name);
      return row && copyPolicy(row);
    });
  }

  /** See {@linkcode StoreBackend.deletePolicy}. */
  deletePolicy(name: string): Promise<boolean> {
    return this.#run(() => this.#policies.delete(name));
  }

  /** See {@linkcode StoreBackend.listPolicies}. */
  listPolicies(): Promise<PolicyRow[]> {
    return this.#run(() =>
      [...this.#policies.values()]
        .sort((a, b) => compareCodePoints(a.name, b.name))
        .map(copyPolicy)
    );
  }

  /** Drops every row. */
  close(): Promise<void> {
    this.#closed = true;
    this.#secrets.clear();
    this.#policies.clear();
    this.#meta = undefined;
    return Promise.resolve();
  }
}
