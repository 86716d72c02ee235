// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The raw storage interface under nexus: sealed records keyed by plaintext
 * lookup columns. A backend never sees a key or a plaintext value; sealing
 * and opening happen above it (`record_cipher.ts`), and so does every check
 * of what a plaintext column says against the sealed record.
 *
 * Store format 2 (schema 2):
 * - a secret path has one row with its revision (the compare-and-set
 *   token) and its sealed head, and one row per older version with its
 *   sealed record (see `secrets/secret_head.ts` for what each holds);
 * - a policy has one row with its sealed record; the sealed policy set
 *   names every policy with the generation it was last written at, and its
 *   plaintext generation is the compare-and-set token of every policy write;
 * - the meta row holds what nexus reads before it has the root key (store
 *   id, key check, threshold, shares, commitments) and the sealed keyring;
 * - the integrity row (schema 3) holds the store digest of every head's
 *   revision and the policy generation, with the store generation and its
 *   MAC (`store_digest.ts`); every write updates it in its own transaction
 *   through the {@linkcode WriteLedger} nexus attaches once unlocked;
 * - the audit anchor row holds the audit chain's head as last anchored;
 * - during a rekey, a pending root key (its key check, split, commitments
 *   and the keyring wrapped for it) waits beside the meta until it is
 *   committed in one transaction (`rekey.ts`);
 * - a store restored from a backup keeps the backup's digest and MAC until
 *   its first unlock checks them (`backup_file.ts`).
 *
 * Plaintext columns, and why: secret paths and policy names (lookup and
 * listing), version numbers (lookup and pruning by cutoff), the head
 * revision and policy generation (compare-and-set). Every one of them is
 * bound into the associated data of the record it stands next to, and
 * every read checks the version rows of a path against its sealed head.
 *
 * Every method is async, and every change is one backend call applied in
 * one transaction whose compare-and-set is the `UPDATE … WHERE revision = ?`
 * (or generation) itself, so a networked database shared by several nexus
 * replicas in READ COMMITTED (PostgreSQL) can implement the interface with
 * the same layers above. Each read is one statement, so it sees one
 * snapshot.
 *
 * @module
 */
import type { IntegrityRow } from "./store_digest.ts";

export type { IntegrityRow };

/** The schema version this build writes and reads. */
export const SCHEMA_VERSION = 3;

/**
 * The schema of store format 2 without the integrity row: a schema-1
 * migration writes it, and the first unlock anchors it into schema 3.
 */
export const FORMAT2_SCHEMA_VERSION = 2;

/** Length of the random store id in bytes. */
export const STORE_ID_BYTES = 16;

/** Raised when a store cannot be opened or initialized (never carries data). */
export class StoreError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreError";
  }
}

/** Store-wide facts written once at initialization; readable without a key. */
export interface StoreMeta {
  /** Random id, the HKDF salt of the purpose keys and the commitment key. */
  readonly storeId: Uint8Array<ArrayBuffer>;
  /** MAC proving which root key belongs to this store. */
  readonly keyCheck: Uint8Array<ArrayBuffer>;
  /** Shares needed to rebuild the root key. */
  readonly threshold: number;
  /** Number of shares (0 for a store that has no keepers). */
  readonly shareCount: number;
  /** Opaque commitment per share; element `i - 1` belongs to share `i`. */
  readonly commitments: readonly Uint8Array<ArrayBuffer>[];
  /**
   * The schema the stored data is in, as read (ignored when writing): an
   * older one is migrated when the store is first unlocked.
   */
  readonly schemaVersion?: number;
  /**
   * The root key a rekey is moving the store to, while it waits to be
   * committed (as read; ignored when writing).
   */
  readonly pending?: PendingRootKey;
}

/** The new root key of a rekey in progress, as the store keeps it. */
export interface PendingRootKey {
  /** MAC proving which root key it is. */
  readonly keyCheck: Uint8Array<ArrayBuffer>;
  /** Shares needed to rebuild it. */
  readonly threshold: number;
  /** Number of its shares. */
  readonly shareCount: number;
  /** Commitment per share; element `i - 1` belongs to share `i`. */
  readonly commitments: readonly Uint8Array<ArrayBuffer>[];
}

/** Sealed record bytes (`record_cipher.ts`). */
export type Sealed = Uint8Array<ArrayBuffer>;

/** Which version rows a path has: how many, the lowest and highest number. */
export interface StoredVersions {
  /** Number of version rows. */
  readonly count: number;
  /** Lowest version number, 0 when there is none. */
  readonly lowest: number;
  /** Highest version number, 0 when there is none. */
  readonly highest: number;
}

/** A secret path as read in one statement. */
export interface SecretRow {
  /** Incremented by every write to the path; the compare-and-set token. */
  readonly revision: number;
  /** The sealed head, bound to `revision`. */
  readonly head: Sealed;
  /** The version rows the path has. */
  readonly versions: StoredVersions;
  /** The record of the version asked for, when asked and stored. */
  readonly record?: Sealed;
}

/** Everything one secret write does, applied atomically. */
export interface SecretWrite {
  /** The new head, sealed for the revision after the expected one. */
  readonly head: Sealed;
  /** A version record to insert; its number must not be stored yet. */
  readonly insert?: { readonly version: number; readonly record: Sealed };
  /** Afterwards drop every version row below this number. */
  readonly pruneBelow?: number;
}

/**
 * A write the rows hold but the integrity row does not yet (PostgreSQL,
 * whose writes log themselves for the push leader to fold in).
 */
export interface PendingWrite {
  /** The log entry's id. */
  readonly id: number;
  /** The secret path, or null for the policy set. */
  readonly path: string | null;
  /** The revision (or generation) before the write, 0 for a new one. */
  readonly from: number;
  /** The revision (or generation) the write made. */
  readonly to: number;
}

/** What the store digest covers, read in one snapshot. */
export interface IntegritySnapshot {
  /** The integrity row, absent before anchoring (schema 2, a new store). */
  readonly row?: IntegrityRow;
  /**
   * Whether the store's data predates the integrity row (schema 1 or 2
   * data, not anchored yet), so its first unlock anchors it.
   */
  readonly needsAnchor?: boolean;
  /** Writes the rows hold that the row does not yet (see PendingWrite). */
  readonly pending?: readonly PendingWrite[];
  /** Every secret path, by code point ascending. */
  readonly paths: readonly string[];
  /** The revision of each path, in the order of `paths`. */
  readonly revisions: readonly number[];
  /** The policy set's generation, 0 before the first policy write. */
  readonly policyGeneration: number;
}

/**
 * What a backend calls inside every write transaction once nexus is
 * unlocked: the ledger follows each write and the transaction's outcome,
 * and gives the integrity row the transaction stores. Calls are
 * synchronous, so a synchronous transaction (SQLite) can make them.
 */
export interface WriteLedger {
  /** The integrity row as stored (outside a write transaction). */
  readonly row: IntegrityRow;
  /**
   * A secret path moved from revision `from` (0: new) to `to`.
   *
   * @throws {IntegrityError} when the ledger never saw revision `from`
   *   (the store was changed underneath nexus)
   */
  secretWritten(path: string, from: number, to: number): void;
  /** The policy set moved from generation `from` (0: none) to `to`. */
  policyWritten(from: number, to: number): void;
  /**
   * The integrity row to store before the transaction commits (one per
   * transaction, however many writes it holds), replacing the row whose
   * MAC is `replaces`; undefined when nothing was written.
   */
  seal():
    | { row: IntegrityRow; replaces: Uint8Array<ArrayBuffer> }
    | undefined;
  /** A savepoint: what {@linkcode rollbackTo} returns to. */
  mark(): number;
  /** Undoes every call after `mark` (their transaction rolled back). */
  rollbackTo(mark: number): void;
  /**
   * The transaction committed, with the sealed row. A backend whose commit
   * reaches the disk later (SQLite's WAL synced off the thread) passes
   * `onDisk` false and calls {@linkcode synced} once it has.
   */
  commit(onDisk?: boolean): void;
  /**
   * A commit made with `onDisk` false is on disk, with `row` the integrity
   * row it stored: checkpoints may now name it.
   */
  synced(row: IntegrityRow): void;
  /**
   * A write committed that logged itself for folding (backends with
   * {@linkcode StoreBackend.foldPending}): the checkpoint that folds it
   * should follow soon.
   */
  logged(): void;
}

/** The audit chain's head as anchored in the store. */
export interface AuditAnchorRow {
  /** Sequence number of the anchored line. */
  readonly seq: number;
  /** SHA-256 of that line. */
  readonly hash: Uint8Array<ArrayBuffer>;
  /** MAC of the store id, seq and hash under the integrity key. */
  readonly mac: Uint8Array<ArrayBuffer>;
}

/** Every record of one secret path, read in one statement. */
export interface SecretRecords {
  /** The path. */
  readonly path: string;
  /** Its revision. */
  readonly revision: number;
  /** The sealed head. */
  readonly head: Sealed;
  /** Every version row, lowest first. */
  readonly versions: readonly {
    readonly version: number;
    readonly record: Sealed;
  }[];
}

/** One row of a store snapshot, as a backup carries it. */
export type SnapshotRow =
  | { readonly kind: "secret"; readonly records: SecretRecords }
  | {
    readonly kind: "policy";
    readonly name: string;
    readonly record: Sealed;
  }
  | { readonly kind: "policySet"; readonly set: PolicySetRow };

/**
 * A consistent read-only view of a whole store (one snapshot), for a
 * backup taken while writes go on.
 */
export interface StoreSnapshot extends AsyncDisposable {
  /** The meta, as of the snapshot. */
  readonly meta: StoreMeta;
  /** The sealed keyring, as of the snapshot. */
  readonly keyring: Sealed;
  /**
   * Every row of the snapshot: secret paths by code point ascending (each
   * with its version rows), then the policy set and the policies. Read in
   * pages, so the caller's pace bounds the memory used.
   */
  rows(): AsyncIterable<SnapshotRow>;
}

/** What a store restored from a backup keeps until its first unlock. */
export interface RestoreCheck {
  /** SHA-256 of the backup file up to its end frame. */
  readonly digest: Uint8Array<ArrayBuffer>;
  /** The backup's MAC over the digest, under the backup key of its root key. */
  readonly mac: Uint8Array<ArrayBuffer>;
}

/** A whole store to write into an empty backend (a restored backup). */
export interface StoreImport {
  /** The meta (store id, key check, split, commitments). */
  readonly meta: StoreMeta;
  /** The sealed keyring. */
  readonly keyring: Sealed;
  /** Every row; rejecting stops the import and writes nothing. */
  readonly rows: AsyncIterable<SnapshotRow>;
  /**
   * Called once every row is in: the check the first unlock verifies, or a
   * rejection that stops the import and writes nothing.
   */
  readonly check: () => Promise<RestoreCheck>;
}

/** The outcome of a compare-and-set write. */
export type WriteResult =
  | { readonly ok: true; readonly revision: number }
  | { readonly ok: false; readonly conflict: true };

/** A key range of a listing, in code point (UTF-8 byte) order. */
export interface KeyRange {
  /** Only keys that start with this (default: all). */
  readonly prefix?: string;
  /** Only keys after this one, exclusive (default: from the start). */
  readonly after?: string;
  /** At most this many keys (default: all). */
  readonly limit?: number;
}

/** The sealed set of policy names and its generation. */
export interface PolicySetRow {
  /** Incremented by every policy write; the compare-and-set token. */
  readonly generation: number;
  /** The sealed set, bound to `generation`. */
  readonly record: Sealed;
}

/** One policy as read with the policy set, in one statement. */
export interface PolicyRead {
  /** The policy set, absent before the first policy write. */
  readonly set?: PolicySetRow;
  /** The policy's record, when a row of that name exists. */
  readonly record?: Sealed;
}

/** Every policy row with the policy set, in one snapshot. */
export interface PolicySnapshot {
  /** The policy set, absent before the first policy write. */
  readonly set?: PolicySetRow;
  /** Every row, by name ascending. */
  readonly rows: readonly { readonly name: string; readonly record: Sealed }[];
}

/** One policy write: a record to insert or replace, or none to delete. */
export interface PolicyChange {
  /** The policy name. */
  readonly name: string;
  /** The new record, or undefined to delete the row. */
  readonly record?: Sealed;
}

/**
 * Raw persistence for nexus. Write failures (disk full, read-only medium)
 * reject with `ApiError` code `store_write_failed` and leave the stored data
 * as it was; reads keep working.
 */
export interface StoreBackend {
  /** `sqlite`, `postgres` or `memory`. */
  readonly kind: string;
  /** Where the data lives (file path, database URL), or undefined for memory. */
  readonly location: string | undefined;
  /**
   * Present while the stored data is in schema 1; the store migrates it on
   * its first unlock. Only SQLite stores can be that old.
   */
  readonly schema1: Schema1Migration | undefined;

  /** The store meta, or undefined before {@linkcode initMeta}. */
  readMeta(): Promise<StoreMeta | undefined>;
  /**
   * Writes the store meta once.
   *
   * @throws {StoreError} when meta is already present
   */
  initMeta(meta: StoreMeta): Promise<void>;

  /** The sealed keyring, or undefined before the first unlock. */
  readKeyring(): Promise<Sealed | undefined>;
  /**
   * Stores the keyring unless one is stored already (another replica was
   * first).
   *
   * @returns the keyring as stored: this one, or the one already there
   */
  initKeyring(keyring: Sealed): Promise<Sealed>;

  /**
   * Replaces the keyring if the stored one is still byte-equal to
   * `expected` (another replica may have written it first).
   *
   * @returns whether it was replaced
   */
  writeKeyring(expected: Sealed, keyring: Sealed): Promise<boolean>;

  /**
   * Stores the root key a rekey moves to (replacing one left by an earlier
   * rekey), if the store's key check is still `currentKeyCheck`.
   *
   * @param currentKeyCheck the key check of the root key in use
   * @param pending the new key's check, split and commitments
   * @param keyring the current keyring, wrapped for the new key
   * @returns false when the store moved to another key meanwhile
   */
  writePendingRootKey(
    currentKeyCheck: Uint8Array<ArrayBuffer>,
    pending: PendingRootKey,
    keyring: Sealed,
  ): Promise<boolean>;
  /**
   * Makes the pending root key the store's key: key check, threshold,
   * share count, commitments and keyring, in one transaction, if the
   * pending key's check is still `pendingKeyCheck` and, when given, the
   * store's keyring is still byte-equal to `expectedKeyring` (the one the
   * pending keyring was made from: another replica may have written it).
   *
   * @returns false when no such pending key is stored, or the keyring moved
   */
  commitPendingRootKey(
    pendingKeyCheck: Uint8Array<ArrayBuffer>,
    expectedKeyring?: Sealed,
  ): Promise<boolean>;
  /** Drops the pending root key, if any (the rekey was abandoned). */
  clearPendingRootKey(): Promise<void>;

  /** Opens a snapshot of the whole store (meta must exist). */
  openSnapshot(): Promise<StoreSnapshot>;
  /**
   * Writes a whole store into this empty backend in one transaction: a
   * failure or a rejected row or check leaves it empty.
   *
   * @throws {StoreError} when the backend already holds a store
   */
  importStore(store: StoreImport): Promise<void>;
  /** The check of a store restored from a backup, until it is cleared. */
  readRestoreCheck(): Promise<RestoreCheck | undefined>;
  /** Drops the restore check (the first unlock verified it). */
  clearRestoreCheck(): Promise<void>;

  /**
   * A path's revision, sealed head and version rows, and (with `version`)
   * that version's record, in one statement.
   *
   * @returns undefined when the path is unknown
   */
  readSecret(path: string, version?: number): Promise<SecretRow | undefined>;
  /**
   * Applies `write` if the path's revision still equals `expectedRevision`
   * (0: the path must not exist); the new revision is one more. The head,
   * the version insert and the pruning are one transaction.
   */
  writeSecret(
    path: string,
    expectedRevision: number,
    write: SecretWrite,
  ): Promise<WriteResult>;
  /** Stored paths in `range`, by code point ascending, by keyset. */
  listSecretPaths(range: KeyRange): Promise<string[]>;
  /**
   * Every record of the paths in `range` (by keyset, code point
   * ascending), in one statement: for re-encryption.
   */
  readSecretRecords(range: KeyRange): Promise<SecretRecords[]>;
  /**
   * Replaces a path's head and version records with records of equal
   * content sealed again (another term), in one transaction, if the path's
   * revision still equals `revision`; the revision stays, since nothing
   * the head says changed. Version rows pruned meanwhile are skipped.
   *
   * @returns false when the path changed (or went) since it was read
   */
  resealSecret(
    path: string,
    revision: number,
    head: Sealed,
    versions: readonly { readonly version: number; readonly record: Sealed }[],
  ): Promise<boolean>;
  /**
   * Replaces the policy set and policy records with records of equal
   * content sealed again, in one transaction, if the set's generation
   * still equals `generation` (which stays).
   *
   * @returns false when a policy was written since they were read
   */
  resealPolicies(
    generation: number,
    set: Sealed,
    rows: readonly { readonly name: string; readonly record: Sealed }[],
  ): Promise<boolean>;
  /**
   * How many sealed records (heads, versions, policies, the policy set)
   * name a data-key term below `term`, read from their plaintext headers.
   */
  countRecordsBelowTerm(term: number): Promise<number>;

  /** What the store digest covers, with the integrity row, one snapshot. */
  readIntegrity(): Promise<IntegritySnapshot>;
  /**
   * Stores the integrity row, replacing any: the anchor of a new store, of
   * a store of schema 2 (which becomes schema 3 in the same transaction),
   * and of a rollback an operator accepted.
   *
   * @param row the row, computed from the rows as they are
   * @param folded pending writes the row includes, to drop from the log
   */
  anchorIntegrity(
    row: IntegrityRow,
    folded?: readonly PendingWrite[],
  ): Promise<void>;
  /**
   * Folds the pending writes into the integrity row through `ledger`, in
   * one transaction: only for a backend whose writes log themselves
   * (PostgreSQL); the others update the row inside every write.
   *
   * @returns false when the stored row is not the one `ledger` expects
   *   (another replica folded, or the row was changed): the ledger must be
   *   rebuilt from the store
   */
  foldPending?(ledger: WriteLedger): Promise<boolean>;
  /**
   * The store's epoch and generation as stored, counting the logged writes
   * not folded yet: only for a backend with {@linkcode foldPending}, whose
   * replicas' ledgers follow only the writes they fold.
   */
  storedPosition?(): Promise<{ epoch: number; generation: number }>;
  /**
   * From now on, every secret and policy write calls `ledger` inside its
   * transaction and stores the row it returns; undefined detaches.
   */
  attachLedger(ledger: WriteLedger | undefined): void;
  /**
   * An audit chain's anchor, absent before the first.
   *
   * @param name whose chain: a replica's name (PostgreSQL), "" for one nexus
   */
  readAuditAnchor(name: string): Promise<AuditAnchorRow | undefined>;
  /** Replaces an audit chain's anchor. */
  writeAuditAnchor(name: string, anchor: AuditAnchorRow): Promise<void>;

  /** The policy set, or undefined before the first policy write. */
  readPolicySet(): Promise<PolicySetRow | undefined>;
  /** One policy's row with the policy set. */
  readPolicy(name: string): Promise<PolicyRead>;
  /** Every policy row with the policy set. */
  readPolicies(): Promise<PolicySnapshot>;
  /**
   * Replaces the policy set if its generation still equals
   * `expectedGeneration` (0: no set yet) and applies `change`, in one
   * transaction; the new generation is one more.
   */
  writePolicy(
    expectedGeneration: number,
    set: Sealed,
    change: PolicyChange,
  ): Promise<WriteResult>;

  /** Finishes queued writes and releases the backend. */
  close(): Promise<void>;
}

/** A schema-1 secret path as stored: every field sealed on its own. */
export interface Schema1Secret {
  /** The path. */
  readonly path: string;
  /** Its revision. */
  readonly revision: number;
  /** Sealed head fields. */
  readonly createdTime: Sealed;
  /** Sealed head field. */
  readonly updatedTime: Sealed;
  /** Sealed head field. */
  readonly maxVersions: Sealed;
  /** Every version row, lowest first. */
  readonly versions: readonly {
    readonly version: number;
    /** The plaintext flag, which schema 1 trusted too far. */
    readonly deleted: boolean;
    readonly data: Sealed;
    readonly createdTime: Sealed;
    readonly deletedTime: Sealed;
  }[];
}

/** A schema-1 policy row: every field sealed on its own. */
export interface Schema1Policy {
  /** The name. */
  readonly name: string;
  /** Sealed fields, by their schema-1 field names. */
  readonly spiffeIdPattern: Sealed;
  /** Sealed field. */
  readonly pathPattern: Sealed;
  /** Sealed field. */
  readonly permissions: Sealed;
  /** Sealed field. */
  readonly createdAt: Sealed;
  /** Sealed field. */
  readonly updatedAt: Sealed;
}

/** What a schema-1 migration turns each stored item into. */
export interface Schema1Converter {
  /** The keyring of the migrated store. */
  keyring(): Promise<Sealed>;
  /** One path in format 2: revision, sealed head, version records. */
  secret(secret: Schema1Secret): Promise<{
    readonly revision: number;
    readonly head: Sealed;
    readonly records: readonly { version: number; record: Sealed }[];
  }>;
  /** Every policy in format 2, with the policy set (undefined: none). */
  policies(rows: readonly Schema1Policy[]): Promise<
    {
      readonly set: PolicySetRow;
      readonly rows: readonly { name: string; record: Sealed }[];
    } | undefined
  >;
}

/** The migration of a schema-1 store. */
export interface Schema1Migration {
  /**
   * Rewrites every row through `convert` in one transaction and sets the
   * schema to the current one; on any failure (or a crash) the store stays
   * in schema 1 as it was.
   *
   * @param convert the conversion of each item
   * @param onProgress called after each batch with paths done and total
   */
  run(
    convert: Schema1Converter,
    onProgress?: (done: number, total: number) => void,
  ): Promise<void>;
}

/**
 * Checks the shape of store meta before it is written.
 *
 * @param meta the candidate meta
 * @throws {StoreError} naming the first invalid field
 */
export function assertStoreMeta(meta: StoreMeta): void {
  if (meta.storeId.length !== STORE_ID_BYTES) {
    throw new StoreError(`Store id must be ${STORE_ID_BYTES} bytes`);
  }
  if (meta.keyCheck.length === 0) {
    throw new StoreError("Key-check value must not be empty");
  }
  const count = (n: number) => Number.isInteger(n) && n >= 0 && n <= 255;
  if (!count(meta.shareCount) || !count(meta.threshold)) {
    throw new StoreError("Threshold and share count must be 0 to 255");
  }
  if (meta.threshold > meta.shareCount) {
    throw new StoreError("Threshold cannot exceed the share count");
  }
  if (meta.commitments.length !== meta.shareCount) {
    throw new StoreError("There must be one commitment per share");
  }
}

/**
 * Compares strings by code point, which is SQLite's default (UTF-8 byte)
 * order, so every backend lists in the same order.
 *
 * @param a first string
 * @param b second string
 * @returns negative, zero or positive
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}

// Surrogates (code points above U+FFFF) sort after U+E000..U+FFFF.
function rank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

/**
 * The smallest string above every string that starts with `prefix`, for a
 * range scan `key >= prefix AND key < end`. Keys and prefixes are ASCII
 * (path and name validation), so incrementing the last character is enough.
 *
 * @param prefix a non-empty ASCII prefix
 * @returns the exclusive upper bound
 */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) +
    String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/**
 * The data-key term a sealed record names in its plaintext header
 * (`0x02 ‖ term u32 big-endian ‖ …`, see `record_cipher.ts`), so a backend
 * can count records by term without a key.
 *
 * @param record a sealed record
 * @returns its term, or 0 for a record too short to have one
 */
export function recordTerm(record: Uint8Array): number {
  if (record.length < 5) return 0;
  return new DataView(record.buffer, record.byteOffset).getUint32(1);
}

/**
 * The 4-byte big-endian form of a term, as record headers hold it, for
 * comparing headers byte-wise in SQL.
 *
 * @param term a term
 * @returns its bytes
 */
export function termBytes(term: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, term);
  return out;
}
