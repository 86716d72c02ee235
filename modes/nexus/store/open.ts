// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The nexus store: a backend plus, once unlocked with the purpose keys, the
 * keyring, the secret service and the policy store. Meta is readable while
 * locked, so nexus can learn the store id, threshold and commitments before
 * it has the root key. The root key itself never reaches this layer.
 *
 * Unlocking checks the keys against the key-check value (or finishes a
 * rekey a crash interrupted, when they are its new key), migrates a
 * schema-1 store (first unlock after an upgrade), creates the keyring of a
 * new store, unwraps the keyring, checks a store restored from a backup
 * against the backup's MAC, resumes a re-encryption, and checks the store
 * digest against the integrity row (`store_digest.ts`): a store whose rows
 * do not match it, or a restored one, is held (no data served) until an
 * operator accepts its state. A store of schema 2, which has no integrity
 * row, is checked row by row and anchored: it becomes schema 3.
 *
 * @module
 */
import { type PurposeKeys, verifyKeyCheck } from "../../../lib/crypto/kdf.ts";
import { verifyBackupMac } from "../../../lib/backup/format.ts";
import type { Logger } from "../../../lib/log.ts";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import { SecretService } from "../secrets/secret_service.ts";
import type { HmacSha256 } from "../../../lib/crypto/sha256.ts";
import type { Checkpoint } from "../../../lib/wire/checkpoint.ts";
import {
  type IntegrityRow,
  type IntegritySnapshot,
  type PendingRootKey,
  type Sealed,
  type StoreBackend,
  StoreError,
  type StoreMeta,
  type StoreSnapshot,
} from "./backend.ts";
import {
  type AuditHead,
  signAuditAnchor,
  signCheckpoint,
  verifyAuditAnchor,
  verifyCheckpoint,
} from "./checkpoint_mac.ts";
import { IntegrityLedger } from "./integrity_ledger.ts";
import { unfoldPending } from "./pending_writes.ts";
import { sameBytes } from "./store_digest.ts";
import { type CheckProblem, checkRows } from "./store_check.ts";
import { prepareDataDir, resolveDataDir } from "./data_dir.ts";
import { IntegrityError } from "./integrity.ts";
import {
  CountingKeys,
  DEFAULT_MAX_ENCRYPTIONS,
  type KeyLimits,
  KeyManager,
  type RekeyWindow,
} from "./key_manager.ts";
import {
  newKeyring,
  openKeyring,
  type ReencryptProgress,
  sealKeyring,
} from "./keyring.ts";
import { MemoryBackend } from "./memory_backend.ts";
import { PolicyStore } from "./policy_store.ts";
import { RecordCipher } from "./record_cipher.ts";
import { Reencryption, SHARED_GRACE_MS } from "./reencrypt.ts";
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
  /** The nonce budget and age of data keys (default: 90 % of 2^32, no age). */
  readonly keyLimits?: KeyLimits | undefined;
  /** Paths per second a re-encryption looks at (default 1000). */
  readonly reencryptRate?: number | undefined;
  /**
   * How long a term must have been active before a re-encryption drops
   * older ones (default: 30 s with PostgreSQL replicas, else 0).
   */
  readonly retireGraceMs?: number | undefined;
}

/** What {@linkcode NexusStore} needs beyond its backend. */
export interface StoreSettings {
  /** Versions kept per secret. */
  readonly maxVersions: number;
  /** Where a migration, rotations and re-encryption report. */
  readonly log?: Logger | undefined;
  /** The nonce budget and age of data keys. */
  readonly keyLimits?: KeyLimits | undefined;
  /** Paths per second a re-encryption looks at. */
  readonly reencryptRate?: number | undefined;
  /** How long a term must be active before older ones are dropped. */
  readonly retireGraceMs?: number | undefined;
}

/**
 * Why a store that unlocked serves nothing: its rows do not match its
 * integrity row (`tampered`), it has rows but no integrity row
 * (`unanchored`), or it was restored from a backup and not accepted yet
 * (`restored`).
 */
export interface IntegrityHold {
  /** The kind of problem. */
  readonly kind: "tampered" | "unanchored" | "restored";
  /** One sentence for the operator's log; names no value. */
  readonly message: string;
}

/** What `spike pilot operator check` reports: counts, never values. */
export interface CheckReport {
  /** Secret paths checked. */
  readonly secrets: number;
  /** Version records opened. */
  readonly versions: number;
  /** Policy records opened. */
  readonly policies: number;
  /** The integrity row as stored, if any. */
  readonly digest: { readonly epoch: number; readonly generation: number };
  /** Problems found, in total. */
  readonly problemCount: number;
  /** The first problems found (at most 100). */
  readonly problems: readonly CheckProblem[];
}

const LISTED_PROBLEMS = 100;

/** The store of one nexus: meta always, data once unlocked. */
export class NexusStore {
  /** The raw backend (for diagnostics and tests; routes use the services). */
  readonly backend: StoreBackend;
  readonly #settings: StoreSettings;
  #keys: KeyManager | undefined;
  #secrets: SecretService | undefined;
  #policies: PolicyStore | undefined;
  #reencryption: Reencryption | undefined;
  #integrity: HmacSha256 | undefined;
  #storeId: Uint8Array | undefined;
  #ledger: IntegrityLedger | undefined;
  #hold: IntegrityHold | undefined;
  // The integrity row of the rows as found at unlock (held or not).
  #found: IntegrityRow | undefined;
  readonly #commitListeners: ((row: IntegrityRow) => void)[] = [];

  /**
   * Wraps a backend.
   *
   * @param backend the raw store
   * @param settings versions kept per secret, key limits, log
   */
  constructor(backend: StoreBackend, settings: StoreSettings) {
    this.backend = backend;
    this.#settings = settings;
  }

  get #log(): Logger | undefined {
    return this.#settings.log;
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
   * checking them against the stored key-check value. Keys of the pending
   * root key of a rekey that a crash interrupted finish that rekey; keys of
   * the current root key drop such a pending key. A schema-1 store is
   * migrated first (one transaction: on failure it stays as it was); a
   * store without a keyring gets one; a store restored from a backup must
   * match the backup's MAC, and then starts a new data-key term. Then the
   * store digest is checked: see {@linkcode hold} for a store that fails
   * it, and for a restored one.
   *
   * @param keys the purpose keys (with `schema1` for a schema-1 store)
   * @throws {StoreError} when the store has no meta yet, the keys do not
   * belong to it, or a migration fails; `IntegrityError` when the keyring
   * does not open or a restored backup fails its MAC
   */
  async unlock(keys: PurposeKeys): Promise<void> {
    const meta = await this.backend.readMeta();
    if (!meta) {
      throw new StoreError("The store has no meta yet: initialize it first");
    }
    let finishedRekey = false;
    if (await verifyKeyCheck(keys, meta.keyCheck)) {
      // A rekey that stopped before its commit: the store keeps this key.
      if (meta.pending) {
        await this.backend.clearPendingRootKey();
        this.#log?.warn(
          "An interrupted rekey was abandoned: the store keeps its root key",
        );
      }
    } else if (
      meta.pending && await verifyKeyCheck(keys, meta.pending.keyCheck)
    ) {
      if (!await this.backend.commitPendingRootKey(meta.pending.keyCheck)) {
        throw new StoreError("The store's pending root key changed meanwhile");
      }
      finishedRekey = true;
      this.#log?.warn(
        "An interrupted rekey was finished: the store now uses its new root key",
      );
    } else {
      throw new StoreError("The key does not belong to this store");
    }
    const now = new Date().toISOString();
    const sealed = this.backend.schema1
      ? await this.#migrate(keys)
      : await this.backend.readKeyring() ??
        await this.backend.initKeyring(
          await newKeyring(keys.keyring, { rootKeyCreated: now, now }),
        );
    const manager = await KeyManager.open(
      this.backend,
      keys,
      sealed,
      this.#settings.keyLimits ?? { maxEncryptions: DEFAULT_MAX_ENCRYPTIONS },
      this.#log,
    );
    let restored = false;
    let integrity: HmacSha256;
    try {
      restored = await this.#checkRestored(keys, manager);
      integrity = await manager.integrityKey();
      // The pending keyring was a copy: encryptions other replicas counted
      // after it was taken are not in it, so no term of it seals again.
      if (finishedRekey) await manager.rotate("finished an interrupted rekey");
    } catch (e) {
      manager.close();
      throw e;
    }
    const records = new RecordCipher(manager);
    const written = () => this.#ledger;
    this.#keys = manager;
    this.#integrity = integrity;
    this.#storeId = meta.storeId;
    this.#secrets = new SecretService(
      this.backend,
      records,
      { maxVersions: this.#settings.maxVersions },
      written,
    );
    this.#policies = new PolicyStore(this.backend, records, written);
    this.#reencryption = new Reencryption(this.backend, records, manager, {
      pathsPerSecond: this.#settings.reencryptRate ?? 1000,
      log: this.#log,
      retireGraceMs: this.#settings.retireGraceMs ??
        (this.backend.kind === "postgres" ? SHARED_GRACE_MS : 0),
    });
    this.#reencryption.resume();
    await this.#checkIntegrity(restored);
  }

  // Checks the rows against the integrity row and follows writes from
  // then on; anchors a store that never had an integrity row (a new store,
  // or one of schema 1 or 2, after checking every row), and holds one that
  // has rows but lost its integrity row, and one restored from a backup
  // (a deliberate rollback, which an operator accepts).
  async #checkIntegrity(restored: boolean): Promise<void> {
    const snapshot = await this.backend.readIntegrity();
    // A ledger of 100,000 paths takes about 100 ms to build: one per unlock.
    const asFound = () => {
      const ledger = this.#newLedger(snapshot, snapshot.row?.epoch ?? 0);
      this.#found = ledger.row;
      return ledger;
    };
    if (restored) {
      asFound();
      return this.#holdWith({
        kind: "restored",
        message:
          "The store was restored from a backup, which rolls it back to the backup's writes",
      });
    }
    if (snapshot.row) {
      const problem = this.#compare(snapshot);
      if (typeof problem === "string") {
        asFound();
        return this.#holdWith({ kind: "tampered", message: problem });
      }
      this.#found = problem.row;
      return this.#follow(problem);
    }
    const current = asFound();
    const empty = snapshot.paths.length === 0 &&
      snapshot.policyGeneration === 0;
    if (!empty && !snapshot.needsAnchor) {
      return this.#holdWith({
        kind: "unanchored",
        message:
          "The store has secrets or policies but no integrity row: it was removed, or the store was written without it",
      });
    }
    if (!empty) {
      this.#log?.warn(
        "Checking every row before anchoring the store digest (schema 3)",
        { location: this.backend.location },
      );
      const report = await this.#checkRows();
      for (const p of report.problems) {
        this.#log?.warn(`Anchored as it is: ${p.message}`);
      }
    }
    await this.#anchor(current, snapshot.pending);
    if (!empty) {
      this.#log?.warn("Store digest anchored: the store is in schema 3", {
        generation: current.row.generation,
      });
    }
  }

  // The ledger of a snapshot as its integrity row was folded at (pending
  // writes taken out), when it matches the row; else why not.
  #compare(snapshot: IntegritySnapshot): IntegrityLedger | string {
    const stored = snapshot.row;
    if (!stored) return "The integrity row is missing";
    const unfolded = unfoldPending(snapshot);
    if (unfolded.problem !== undefined) return unfolded.problem;
    const ledger = this.#newLedger(unfolded.snapshot, stored.epoch);
    return ledger.mismatch(stored) ?? ledger;
  }

  #newLedger(snapshot: IntegritySnapshot, epoch: number): IntegrityLedger {
    return new IntegrityLedger(
      this.#integrity!,
      this.#storeId!,
      snapshot,
      epoch,
    );
  }

  async #anchor(
    ledger: IntegrityLedger,
    folded: IntegritySnapshot["pending"],
  ): Promise<void> {
    await this.backend.anchorIntegrity(ledger.row, folded);
    this.#follow(ledger);
  }

  /**
   * Folds the writes the backend logged into the integrity row (PostgreSQL:
   * the push leader, before each checkpoint). When another replica folded
   * first, the ledger is built again from the store and checked; a store
   * that fails that check is held.
   */
  async fold(): Promise<void> {
    const ledger = this.#ledger;
    if (!ledger || !this.backend.foldPending) return;
    if (await this.backend.foldPending(ledger)) return;
    const result = this.#compare(await this.backend.readIntegrity());
    if (typeof result === "string") {
      this.#log?.error(result);
      return this.#holdWith({ kind: "tampered", message: result });
    }
    this.#follow(result);
    // Rebuilt at the row as stored: what is logged since goes in now.
    await this.backend.foldPending(result);
  }

  #follow(ledger: IntegrityLedger): void {
    for (const listener of this.#commitListeners) ledger.onCommit(listener);
    this.#ledger = ledger;
    this.#hold = undefined;
    this.backend.attachLedger(ledger);
  }

  /**
   * Calls `listener` after every committed write, from the unlock on.
   *
   * @param listener gets the new integrity row
   */
  onCommit(listener: (row: IntegrityRow) => void): void {
    this.#commitListeners.push(listener);
    this.#ledger?.onCommit(listener);
  }

  /**
   * The integrity row of the rows as they are: the ledger's while it
   * follows writes, else the one computed at unlock (a held store).
   * Undefined while locked.
   */
  get rows(): IntegrityRow | undefined {
    return this.#ledger?.row ?? this.#found;
  }

  /**
   * The store's epoch and generation now, for `status`: the ledger's, but
   * on PostgreSQL the stored row plus the writes not folded yet, since a
   * replica that does not lead the push loop folds none of them. A held
   * store's are those unlock found. Undefined while locked.
   */
  async position(): Promise<{ epoch: number; generation: number } | undefined> {
    const rows = this.rows;
    if (!rows) return undefined;
    if (this.#ledger && this.backend.storedPosition) {
      try {
        return await this.backend.storedPosition();
      } catch {
        // Cut off from the database: status still answers, with the
        // ledger's position.
      }
    }
    return { epoch: rows.epoch, generation: rows.generation };
  }

  /**
   * The integrity key (from the keyring), for tests and diagnostics.
   *
   * @throws {ApiError} `state_not_ready` while locked
   */
  get integrityKey(): HmacSha256 {
    if (!this.#integrity) throw notReady();
    return this.#integrity;
  }

  /**
   * Signs a checkpoint of the store as it is now, for the keepers.
   *
   * @param audit the audit chain's head to anchor with it
   * @returns the checkpoint, or undefined while locked or held
   */
  signCheckpoint(audit?: AuditHead): Checkpoint | undefined {
    if (!this.#ledger || !this.#integrity) return undefined;
    return signCheckpoint(
      this.#integrity,
      this.#storeId!,
      this.#ledger.durableRow,
      audit,
    );
  }

  /**
   * Anchors an audit chain's head in the store.
   *
   * @param head the head, a line already written
   * @param name whose chain: a replica's name, "" for one nexus
   * @throws {ApiError} `state_not_ready` while locked
   */
  async anchorAudit(head: AuditHead, name: string): Promise<void> {
    if (!this.#integrity) throw notReady();
    await this.backend.writeAuditAnchor(
      name,
      signAuditAnchor(this.#integrity, this.#storeId!, name, head),
    );
  }

  /**
   * An audit chain's head as anchored in the store, when its MAC verifies.
   *
   * @param name whose chain: a replica's name, "" for one nexus
   * @returns the head, or undefined when there is none or it was altered
   */
  async auditAnchor(name: string): Promise<AuditHead | undefined> {
    const row = await this.backend.readAuditAnchor(name);
    if (!row || !this.#integrity) return undefined;
    return verifyAuditAnchor(this.#integrity, this.#storeId!, name, row)
      ? { seq: row.seq, hash: row.hash }
      : undefined;
  }

  /**
   * Whether a keeper's checkpoint was signed for this store with its key.
   *
   * @param checkpoint a well-formed checkpoint
   * @returns false also while locked
   */
  verifyCheckpoint(checkpoint: Checkpoint): boolean {
    return this.#integrity !== undefined &&
      verifyCheckpoint(this.#integrity, this.#storeId!, checkpoint);
  }

  #holdWith(hold: IntegrityHold): void {
    this.#hold = hold;
    this.#ledger = undefined;
    this.backend.attachLedger(undefined);
  }

  /**
   * Why the unlocked store serves nothing, or undefined when it matches
   * its integrity row.
   */
  get hold(): IntegrityHold | undefined {
    return this.#hold;
  }

  /**
   * The ledger that follows the store's writes: its integrity row, the
   * revisions nexus wrote. Undefined while locked or held.
   */
  get ledger(): IntegrityLedger | undefined {
    return this.#ledger;
  }

  /**
   * Checks every row and the digest: `spike pilot operator check`.
   *
   * @param onProgress told after each page of paths
   * @returns counts and the problems found (names and rules, no values)
   * @throws {ApiError} `state_not_ready` while locked
   */
  async check(onProgress?: (done: number) => void): Promise<CheckReport> {
    const rows = await this.#checkRows(onProgress);
    const problems = [...rows.problems];
    // Read and compared in one turn of the event loop: no write lands in
    // between (SQLite and memory apply writes in their own turns).
    const snapshot = await this.backend.readIntegrity();
    const ledger = this.#ledger;
    const stored = snapshot.row;
    const compared = stored || !snapshot.needsAnchor
      ? this.#compare(snapshot)
      : undefined;
    if (typeof compared === "string") {
      problems.push({ kind: "store", message: compared });
    }
    // Against what this nexus wrote: when its ledger is the stored row's
    // (always on SQLite; on PostgreSQL when this replica folded last).
    const unfolded = unfoldPending(snapshot);
    const differences = ledger && stored &&
        unfolded.problem === undefined &&
        sameBytes(ledger.row.mac, stored.mac)
      ? ledger.differences(unfolded.snapshot)
      : undefined;
    // Paths the row check named already (a head put back older) are not
    // named twice; a path removed altogether is only found here.
    const named = new Set(problems.map((p) => p.name));
    for (const d of differences?.paths ?? []) {
      if (named.has(d.path)) continue;
      problems.push({
        kind: "secret",
        name: d.path,
        message: d.stored === 0
          ? `Secret "${d.path}" has no head row, but nexus wrote its revision ${d.written}`
          : d.written === 0
          ? `Secret "${d.path}" has a head row nexus never wrote`
          : `Secret "${d.path}" head is at revision ${d.stored}, but nexus wrote revision ${d.written}`,
      });
    }
    if (differences?.policyGeneration !== undefined) {
      problems.push({
        kind: "store",
        message:
          `The policy set is at generation ${differences.policyGeneration}, but nexus wrote generation ${
            ledger!.policyGeneration
          }`,
      });
    }
    return {
      secrets: rows.secrets,
      versions: rows.versions,
      policies: rows.policies,
      digest: {
        epoch: stored?.epoch ?? 0,
        generation: stored?.generation ?? 0,
      },
      problemCount: problems.length,
      problems: problems.slice(0, LISTED_PROBLEMS),
    };
  }

  #checkRows(onProgress?: (done: number) => void) {
    return checkRows(
      this.secrets,
      this.policies,
      (after, limit) => this.backend.listSecretPaths({ after, limit }),
      onProgress,
    );
  }

  /**
   * Accepts the store as it is now (`spike pilot operator accept-rollback`):
   * anchors its digest anew at `epoch`, so it orders after every
   * checkpoint it fell behind, and serves it again.
   *
   * @param epoch the new epoch, above any seen
   * @returns the new integrity row
   * @throws {ApiError} `state_not_ready` while locked
   */
  async accept(epoch: number): Promise<IntegrityRow> {
    if (!this.#integrity) throw notReady();
    const snapshot = await this.backend.readIntegrity();
    const ledger = this.#newLedger(snapshot, epoch);
    await this.#anchor(ledger, snapshot.pending);
    return ledger.row;
  }

  // A store restored from a backup: the backup's MAC must verify under
  // this root key (a file altered by someone without the key does not),
  // and a new term takes over, since the counts of the backup's terms stop
  // at the backup while the store it came from may have gone on using them.
  async #checkRestored(
    keys: PurposeKeys,
    manager: KeyManager,
  ): Promise<boolean> {
    const check = await this.backend.readRestoreCheck();
    if (!check) return false;
    if (!await verifyBackupMac(keys.backup, check.digest, check.mac)) {
      throw new IntegrityError(
        "This store was restored from a backup that does not verify under its root key: the backup file was altered after nexus wrote it",
      );
    }
    await manager.rotate("restored from a backup");
    await this.backend.clearRestoreCheck();
    this.#log?.warn("The backup this store was restored from verified");
    return true;
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
    const counting = new CountingKeys(
      await openKeyring(
        keys.keyring,
        await newKeyring(keys.keyring, {
          cipherKey: keys.schema1.cipher,
          rootKeyCreated: null,
          now: new Date().toISOString(),
        }),
      ),
    );
    const records = new RecordCipher(counting);
    log?.warn("Migrating the store from schema 1 to format 2", {
      location: this.backend.location,
    });
    const started = performance.now();
    let lastReport = started;
    await migration.run(
      schema1Converter(
        keys.schema1.storage,
        () => sealKeyring(keys.keyring, counting.document),
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
    return (await this.backend.readKeyring())!;
  }

  /** Whether {@linkcode unlock} succeeded. */
  get unlocked(): boolean {
    return this.#secrets !== undefined;
  }

  /**
   * The keyring and its budget.
   *
   * @throws {ApiError} `state_not_ready` while locked
   */
  get keys(): KeyManager {
    if (!this.#keys) throw notReady();
    return this.#keys;
  }

  /**
   * The cipher-API key, from the keyring, to decrypt; it never opens a
   * store record.
   *
   * @throws {ApiError} `state_not_ready` while locked
   */
  get cipherKey(): CryptoKey {
    return this.keys.keyring.cipherKey;
  }

  /**
   * The cipher-API key for one encryption, counted against its budget.
   *
   * @returns the key
   * @throws {ApiError} `state_not_ready` while locked; `api_internal_error`
   *   once the key has made its allowed encryptions
   */
  cipherSealKey(): CryptoKey | Promise<CryptoKey> {
    return this.keys.cipherSealKey();
  }

  /**
   * Starts a new data-key term, and with `reencrypt` a background pass
   * that seals every record of an older term again.
   *
   * @param reencrypt also re-encrypt the older terms
   * @returns the new term, the previous one and the pass's progress
   */
  async rotate(reencrypt: boolean): Promise<{
    term: number;
    previous: number;
    reencrypt: ReencryptProgress | null;
  }> {
    const { term, previous } = await this.keys.rotate("asked by an operator");
    const progress = reencrypt
      ? await this.#reencryption!.begin()
      : this.keys.keyring.document.reencrypt;
    return { term, previous, reencrypt: progress };
  }

  /** Whether a re-encryption pass runs in this process now. */
  get reencrypting(): boolean {
    return this.#reencryption?.running ?? false;
  }

  /**
   * Stores a rekey's new root key as pending (see
   * {@linkcode KeyManager.prepareRekey}).
   *
   * @param next the new key's purpose keys
   * @param pending its key check, split and commitments
   * @returns the window to commit or abort
   */
  prepareRekey(
    next: PurposeKeys,
    pending: PendingRootKey,
  ): Promise<RekeyWindow> {
    return this.keys.prepareRekey(next, pending);
  }

  /**
   * Opens a consistent snapshot of the whole store, for a backup.
   *
   * @returns the snapshot; dispose of it when done
   */
  openSnapshot(): Promise<StoreSnapshot> {
    return this.backend.openSnapshot();
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
    await this.#reencryption?.stop();
    this.#keys?.close();
    this.#keys = undefined;
    this.#reencryption = undefined;
    this.#secrets = undefined;
    this.#policies = undefined;
    // Queued writes drain on close, still followed by the ledger.
    await this.backend.close();
    this.#integrity = undefined;
    this.#ledger = undefined;
    this.#found = undefined;
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
    const settings: StoreSettings = {
      maxVersions: config.maxVersions,
      log: config.log,
      keyLimits: config.keyLimits,
      reencryptRate: config.reencryptRate,
      retireGraceMs: config.retireGraceMs,
    };
    if (config.backend === "postgres") {
      if (!config.postgres) {
        throw new StoreError("The postgres backend needs its connection");
      }
      // Loaded only here: a nexus on SQLite or memory never loads the
      // PostgreSQL driver.
      const postgres = config.postgres;
      return import("./postgres_backend.ts").then(({ PostgresBackend }) =>
        PostgresBackend.open(postgres)
      ).then((backend) => new NexusStore(backend, settings));
    }
    if (config.backend === "memory") {
      return Promise.resolve(new NexusStore(new MemoryBackend(), settings));
    }
    const dir = config.dataDir ?? resolveDataDir();
    prepareDataDir(dir);
    const options = config.busyTimeoutMs === undefined
      ? {}
      : { busyTimeoutMs: config.busyTimeoutMs };
    return Promise.resolve(
      new NexusStore(SqliteBackend.open(dir, options), settings),
    );
  } catch (e) {
    return Promise.reject(e);
  }
}
