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
  type AuditAnchorRow,
  compareCodePoints,
  type IntegrityRow,
  type IntegritySnapshot,
  type KeyRange,
  type PolicyChange,
  type PolicyRead,
  type PolicySetRow,
  type PolicySnapshot,
  SCHEMA_VERSION,
  type Sealed,
  type SecretRow,
  type SecretWrite,
  type StoreBackend,
  StoreError,
  type StoreMeta,
  type WriteLedger,
  type WriteResult,
} from "./backend.ts";
import { IntegrityError } from "./integrity.ts";
import { keysInRange, lowerBound } from "./key_listing.ts";
import { sameBytes } from "./store_digest.ts";

interface StoredSecret {
  revision: number;
  head: Sealed;
  /** Version number -> record. */
  versions: Map<number, Sealed>;
}

const copy = (b: Sealed) => b.slice();

const copyRow = (r: IntegrityRow): IntegrityRow => ({
  epoch: r.epoch,
  generation: r.generation,
  digest: copy(r.digest),
  mac: copy(r.mac),
});

const copyAnchor = (a: AuditAnchorRow): AuditAnchorRow => ({
  seq: a.seq,
  hash: copy(a.hash),
  mac: copy(a.mac),
});

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
  /** Always undefined: a memory store starts in the current format. */
  readonly schema1 = undefined;
  #meta: StoreMeta | undefined;
  #keyring: Sealed | undefined;
  #secrets = new Map<string, StoredSecret>();
  /** Every path, by code point ascending. */
  #paths: string[] = [];
  #policySet: PolicySetRow | undefined;
  #policies = new Map<string, Sealed>();
  #integrity: IntegrityRow | undefined;
  #auditAnchor: AuditAnchorRow | undefined;
  #ledger: WriteLedger | undefined;
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

  // Runs a write with the ledger: the row it seals replaces the stored
  // one, and a throw undoes the ledger's calls, as a rolled-back
  // transaction would.
  #logged<T>(step: (ledger: WriteLedger) => void, apply: () => T): T {
    const ledger = this.#ledger;
    if (!ledger) return apply();
    const mark = ledger.mark();
    try {
      step(ledger);
      const sealed = ledger.seal();
      if (
        sealed &&
        (!this.#integrity || !sameBytes(this.#integrity.mac, sealed.replaces))
      ) {
        throw new IntegrityError(
          "The store's integrity row is not the one nexus wrote last: the store was changed or replaced underneath nexus",
        );
      }
      const result = apply();
      if (sealed) this.#integrity = copyRow(sealed.row);
      ledger.commit();
      return result;
    } catch (e) {
      ledger.rollbackTo(mark);
      throw e;
    }
  }

  /** See {@linkcode StoreBackend.readMeta}. */
  readMeta(): Promise<StoreMeta | undefined> {
    return this.#run(() =>
      this.#meta && { ...copyMeta(this.#meta), schemaVersion: SCHEMA_VERSION }
    );
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
      const revision = expectedRevision + 1;
      return this.#logged(
        (ledger) => ledger.secretWritten(path, expectedRevision, revision),
        () => {
          if (!stored) {
            this.#paths.splice(lowerBound(this.#paths, path, false), 0, path);
          }
          this.#secrets.set(path, {
            revision,
            head: copy(write.head),
            versions,
          });
          return { ok: true, revision };
        },
      );
    });
  }

  /** See {@linkcode StoreBackend.readIntegrity}. */
  readIntegrity(): Promise<IntegritySnapshot> {
    return this.#run(() => ({
      ...(this.#integrity ? { row: copyRow(this.#integrity) } : {}),
      paths: [...this.#paths],
      revisions: this.#paths.map((p) => this.#secrets.get(p)!.revision),
      policyGeneration: this.#policySet?.generation ?? 0,
    }));
  }

  /** See {@linkcode StoreBackend.anchorIntegrity}. */
  anchorIntegrity(row: IntegrityRow): Promise<void> {
    return this.#run(() => {
      this.#integrity = copyRow(row);
    });
  }

  /** See {@linkcode StoreBackend.attachLedger}. */
  attachLedger(ledger: WriteLedger | undefined): void {
    this.#ledger = ledger;
  }

  /** See {@linkcode StoreBackend.readAuditAnchor}: one nexus, one chain. */
  readAuditAnchor(_name: string): Promise<AuditAnchorRow | undefined> {
    return this.#run(() => this.#auditAnchor && copyAnchor(this.#auditAnchor));
  }

  /** See {@linkcode StoreBackend.writeAuditAnchor}: one nexus, one chain. */
  writeAuditAnchor(_name: string, anchor: AuditAnchorRow): Promise<void> {
    return this.#run(() => {
      this.#auditAnchor = copyAnchor(anchor);
    });
  }

  /** See {@linkcode StoreBackend.listSecretPaths}. */
  listSecretPaths(range: KeyRange): Promise<string[]> {
    return this.#run(() => keysInRange(this.#paths, range));
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
      const rows = [...this.#policies.entries()]
        .sort(([a], [b]) => compareCodePoints(a, b))
        .map(([name, record]) => ({ name, record: copy(record) }));
      return { ...(set ? { set } : {}), rows };
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
      return this.#logged(
        (ledger) => ledger.policyWritten(expectedGeneration, generation),
        () => {
          this.#policySet = { generation, record: copy(set) };
          if (change.record) {
            this.#policies.set(change.name, copy(change.record));
          } else this.#policies.delete(change.name);
          return { ok: true, revision: generation };
        },
      );
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
    this.#integrity = undefined;
    this.#auditAnchor = undefined;
    this.#ledger = undefined;
    return Promise.resolve();
  }
}
