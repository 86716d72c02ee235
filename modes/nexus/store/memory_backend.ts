// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * In-memory {@linkcode StoreBackend}: the same rows and rules as SQLite,
 * gone when the process ends. Bytes are copied in and out so no caller can
 * change stored bytes through a shared buffer.
 *
 * @module
 */
import {
  assertStoreMeta,
  compareCodePoints,
  type KeyRange,
  type PendingRootKey,
  type PolicyChange,
  type PolicyRead,
  type PolicySetRow,
  type PolicySnapshot,
  recordTerm,
  type RestoreCheck,
  SCHEMA_VERSION,
  type Sealed,
  type SecretRecords,
  type SecretRow,
  type SecretWrite,
  type SnapshotRow,
  type StoreBackend,
  StoreError,
  type StoreImport,
  type StoreMeta,
  type StoreSnapshot,
  type WriteResult,
} from "./backend.ts";
import { IntegrityError } from "./integrity.ts";
import { keysInRange, lowerBound } from "./key_listing.ts";

interface StoredSecret {
  revision: number;
  head: Sealed;
  /** Version number -> record. */
  versions: Map<number, Sealed>;
}

const copy = (b: Sealed) => b.slice();

function copyMeta(meta: StoreMeta): StoreMeta {
  return {
    storeId: copy(meta.storeId),
    keyCheck: copy(meta.keyCheck),
    threshold: meta.threshold,
    shareCount: meta.shareCount,
    commitments: meta.commitments.map(copy),
  };
}

function copyPending(pending: PendingRootKey): PendingRootKey {
  return {
    keyCheck: copy(pending.keyCheck),
    threshold: pending.threshold,
    shareCount: pending.shareCount,
    commitments: pending.commitments.map(copy),
  };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A backend that keeps everything in process memory. */
export class MemoryBackend implements StoreBackend {
  /** Always `memory`. */
  readonly kind = "memory";
  /** Always undefined: nothing is on disk. */
  readonly location = undefined;
  /** Always undefined: a memory store starts in the current format. */
  readonly schema1 = undefined;
  #meta: StoreMeta | undefined;
  #keyring: Sealed | undefined;
  #secrets = new Map<string, StoredSecret>();
  /** Every path, by code point ascending. */
  #paths: string[] = [];
  #policySet: PolicySetRow | undefined;
  #policies = new Map<string, Sealed>();
  #pending: { key: PendingRootKey; keyring: Sealed } | undefined;
  #restoreCheck: RestoreCheck | undefined;
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
    return this.#run(() => this.#metaCopy());
  }

  #metaCopy(): StoreMeta | undefined {
    return this.#meta && {
      ...copyMeta(this.#meta),
      schemaVersion: SCHEMA_VERSION,
      ...(this.#pending ? { pending: copyPending(this.#pending.key) } : {}),
    };
  }

  /** See {@linkcode StoreBackend.initMeta}. */
  initMeta(meta: StoreMeta): Promise<void> {
    return this.#run(() => {
      assertStoreMeta(meta);
      if (this.#meta) throw new StoreError("Store meta is already initialized");
      this.#meta = copyMeta(meta);
    });
  }

  /** See {@linkcode StoreBackend.readKeyring}. */
  readKeyring(): Promise<Sealed | undefined> {
    return this.#run(() => this.#keyring && copy(this.#keyring));
  }

  /** See {@linkcode StoreBackend.initKeyring}. */
  initKeyring(keyring: Sealed): Promise<Sealed> {
    return this.#run(() => {
      if (!this.#meta) throw new StoreError("The store has no meta yet");
      this.#keyring ??= copy(keyring);
      return copy(this.#keyring);
    });
  }

  /** See {@linkcode StoreBackend.writeKeyring}. */
  writeKeyring(expected: Sealed, keyring: Sealed): Promise<boolean> {
    return this.#run(() => {
      if (!this.#keyring || !equalBytes(this.#keyring, expected)) return false;
      this.#keyring = copy(keyring);
      return true;
    });
  }

  /** See {@linkcode StoreBackend.writePendingRootKey}. */
  writePendingRootKey(
    currentKeyCheck: Uint8Array<ArrayBuffer>,
    pending: PendingRootKey,
    keyring: Sealed,
  ): Promise<boolean> {
    return this.#run(() => {
      if (!this.#meta || !equalBytes(this.#meta.keyCheck, currentKeyCheck)) {
        return false;
      }
      assertStoreMeta({ ...this.#meta, ...pending });
      this.#pending = { key: copyPending(pending), keyring: copy(keyring) };
      return true;
    });
  }

  /** See {@linkcode StoreBackend.commitPendingRootKey}. */
  commitPendingRootKey(
    pendingKeyCheck: Uint8Array<ArrayBuffer>,
    expectedKeyring?: Sealed,
  ): Promise<boolean> {
    return this.#run(() => {
      const pending = this.#pending;
      if (
        !this.#meta || !pending ||
        !equalBytes(pending.key.keyCheck, pendingKeyCheck) ||
        (expectedKeyring &&
          !(this.#keyring && equalBytes(this.#keyring, expectedKeyring)))
      ) {
        return false;
      }
      this.#meta = { ...this.#meta, ...pending.key };
      this.#keyring = pending.keyring;
      this.#pending = undefined;
      return true;
    });
  }

  /** See {@linkcode StoreBackend.clearPendingRootKey}. */
  clearPendingRootKey(): Promise<void> {
    return this.#run(() => {
      this.#pending = undefined;
    });
  }

  /** See {@linkcode StoreBackend.openSnapshot}. */
  openSnapshot(): Promise<StoreSnapshot> {
    return this.#run(() => {
      const meta = this.#metaCopy();
      if (!meta || !this.#keyring) {
        throw new StoreError("The store has no meta or keyring yet");
      }
      // Copies taken now are the snapshot: later writes replace entries
      // of the live maps, never these.
      const secrets = this.#paths.map((path) => this.#records(path));
      const policies = this.#policiesCopy();
      const set = this.#setCopy();
      return {
        meta,
        keyring: copy(this.#keyring),
        async *rows(): AsyncIterable<SnapshotRow> {
          for (const records of secrets) yield { kind: "secret", records };
          if (set) yield { kind: "policySet", set };
          for (const p of policies) yield { kind: "policy", ...p };
        },
        [Symbol.asyncDispose]: () => Promise.resolve(),
      };
    });
  }

  /** See {@linkcode StoreBackend.importStore}. */
  async importStore(store: StoreImport): Promise<void> {
    await this.#run(() => {
      if (this.#meta) throw new StoreError("The store is not empty");
      assertStoreMeta(store.meta);
    });
    const secrets = new Map<string, StoredSecret>();
    const policies = new Map<string, Sealed>();
    let set: PolicySetRow | undefined;
    for await (const row of store.rows) {
      if (row.kind === "secret") {
        const r = row.records;
        secrets.set(r.path, {
          revision: r.revision,
          head: copy(r.head),
          versions: new Map(r.versions.map((v) => [v.version, copy(v.record)])),
        });
      } else if (row.kind === "policy") {
        policies.set(row.name, copy(row.record));
      } else {
        set = { generation: row.set.generation, record: copy(row.set.record) };
      }
    }
    const check = await store.check();
    await this.#run(() => {
      if (this.#meta) throw new StoreError("The store is not empty");
      this.#meta = copyMeta(store.meta);
      this.#keyring = copy(store.keyring);
      this.#secrets = secrets;
      this.#paths = [...secrets.keys()].sort(compareCodePoints);
      this.#policies = policies;
      this.#policySet = set;
      this.#restoreCheck = { digest: copy(check.digest), mac: copy(check.mac) };
    });
  }

  /** See {@linkcode StoreBackend.readRestoreCheck}. */
  readRestoreCheck(): Promise<RestoreCheck | undefined> {
    return this.#run(() => {
      const c = this.#restoreCheck;
      return c && { digest: copy(c.digest), mac: copy(c.mac) };
    });
  }

  /** See {@linkcode StoreBackend.clearRestoreCheck}. */
  clearRestoreCheck(): Promise<void> {
    return this.#run(() => {
      this.#restoreCheck = undefined;
    });
  }

  #records(path: string): SecretRecords {
    const stored = this.#secrets.get(path)!;
    return {
      path,
      revision: stored.revision,
      head: copy(stored.head),
      versions: [...stored.versions.entries()]
        .sort(([a], [b]) => a - b)
        .map(([version, record]) => ({ version, record: copy(record) })),
    };
  }

  #policiesCopy(): { name: string; record: Sealed }[] {
    return [...this.#policies.entries()]
      .sort(([a], [b]) => compareCodePoints(a, b))
      .map(([name, record]) => ({ name, record: copy(record) }));
  }

  /** See {@linkcode StoreBackend.readSecret}. */
  readSecret(path: string, version = 0): Promise<SecretRow | undefined> {
    return this.#run(() => {
      const stored = this.#secrets.get(path);
      if (!stored) return undefined;
      let lowest = 0;
      let highest = 0;
      for (const n of stored.versions.keys()) {
        if (lowest === 0 || n < lowest) lowest = n;
        if (n > highest) highest = n;
      }
      const record = stored.versions.get(version);
      return {
        revision: stored.revision,
        head: copy(stored.head),
        versions: { count: stored.versions.size, lowest, highest },
        ...(record ? { record: copy(record) } : {}),
      };
    });
  }

  /** See {@linkcode StoreBackend.writeSecret}. */
  writeSecret(
    path: string,
    expectedRevision: number,
    write: SecretWrite,
  ): Promise<WriteResult> {
    return this.#run((): WriteResult => {
      const stored = this.#secrets.get(path);
      if ((stored?.revision ?? 0) !== expectedRevision) {
        return { ok: false, conflict: true };
      }
      const versions = new Map(stored?.versions);
      if (write.insert) {
        if (versions.has(write.insert.version)) {
          // The head said this number was free: a row was put there.
          throw new IntegrityError(
            `Secret "${path}" already has a row for version ${write.insert.version}, which its head does not know`,
          );
        }
        versions.set(write.insert.version, copy(write.insert.record));
      }
      if (write.pruneBelow !== undefined) {
        for (const n of [...versions.keys()]) {
          if (n < write.pruneBelow) versions.delete(n);
        }
      }
      if (!stored) {
        this.#paths.splice(lowerBound(this.#paths, path, false), 0, path);
      }
      const revision = expectedRevision + 1;
      this.#secrets.set(path, { revision, head: copy(write.head), versions });
      return { ok: true, revision };
    });
  }

  /** See {@linkcode StoreBackend.listSecretPaths}. */
  listSecretPaths(range: KeyRange): Promise<string[]> {
    return this.#run(() => keysInRange(this.#paths, range));
  }

  /** See {@linkcode StoreBackend.readSecretRecords}. */
  readSecretRecords(range: KeyRange): Promise<SecretRecords[]> {
    return this.#run(() =>
      keysInRange(this.#paths, range).map((path) => this.#records(path))
    );
  }

  /** See {@linkcode StoreBackend.resealSecret}. */
  resealSecret(
    path: string,
    revision: number,
    head: Sealed,
    versions: readonly { readonly version: number; readonly record: Sealed }[],
  ): Promise<boolean> {
    return this.#run(() => {
      const stored = this.#secrets.get(path);
      if (!stored || stored.revision !== revision) return false;
      const kept = new Map(stored.versions);
      for (const v of versions) {
        if (kept.has(v.version)) kept.set(v.version, copy(v.record));
      }
      this.#secrets.set(path, { revision, head: copy(head), versions: kept });
      return true;
    });
  }

  /** See {@linkcode StoreBackend.resealPolicies}. */
  resealPolicies(
    generation: number,
    set: Sealed,
    rows: readonly { readonly name: string; readonly record: Sealed }[],
  ): Promise<boolean> {
    return this.#run(() => {
      if (this.#policySet?.generation !== generation) return false;
      this.#policySet = { generation, record: copy(set) };
      for (const row of rows) {
        if (this.#policies.has(row.name)) {
          this.#policies.set(row.name, copy(row.record));
        }
      }
      return true;
    });
  }

  /** See {@linkcode StoreBackend.countRecordsBelowTerm}. */
  countRecordsBelowTerm(term: number): Promise<number> {
    return this.#run(() => {
      const below = (record: Sealed) => recordTerm(record) < term ? 1 : 0;
      let n = this.#policySet ? below(this.#policySet.record) : 0;
      for (const record of this.#policies.values()) n += below(record);
      for (const stored of this.#secrets.values()) {
        n += below(stored.head);
        for (const record of stored.versions.values()) n += below(record);
      }
      return n;
    });
  }

  /** See {@linkcode StoreBackend.readPolicySet}. */
  readPolicySet(): Promise<PolicySetRow | undefined> {
    return this.#run(() => this.#setCopy());
  }

  #setCopy(): PolicySetRow | undefined {
    const set = this.#policySet;
    return set && { generation: set.generation, record: copy(set.record) };
  }

  /** See {@linkcode StoreBackend.readPolicy}. */
  readPolicy(name: string): Promise<PolicyRead> {
    return this.#run(() => {
      const set = this.#setCopy();
      const record = this.#policies.get(name);
      return {
        ...(set ? { set } : {}),
        ...(record ? { record: copy(record) } : {}),
      };
    });
  }

  /** See {@linkcode StoreBackend.readPolicies}. */
  readPolicies(): Promise<PolicySnapshot> {
    return this.#run(() => {
      const set = this.#setCopy();
      return { ...(set ? { set } : {}), rows: this.#policiesCopy() };
    });
  }

  /** See {@linkcode StoreBackend.writePolicy}. */
  writePolicy(
    expectedGeneration: number,
    set: Sealed,
    change: PolicyChange,
  ): Promise<WriteResult> {
    return this.#run((): WriteResult => {
      if ((this.#policySet?.generation ?? 0) !== expectedGeneration) {
        return { ok: false, conflict: true };
      }
      const generation = expectedGeneration + 1;
      this.#policySet = { generation, record: copy(set) };
      if (change.record) this.#policies.set(change.name, copy(change.record));
      else this.#policies.delete(change.name);
      return { ok: true, revision: generation };
    });
  }

  /** Drops every row. */
  close(): Promise<void> {
    this.#closed = true;
    this.#secrets.clear();
    this.#paths = [];
    this.#policies.clear();
    this.#policySet = undefined;
    this.#keyring = undefined;
    this.#meta = undefined;
    this.#pending = undefined;
    this.#restoreCheck = undefined;
    return Promise.resolve();
  }
}
