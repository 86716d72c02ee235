// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * SQLite {@linkcode StoreBackend} on `node:sqlite`, file `<dataDir>/spike.db`.
 *
 * Durability: WAL journal; a write's promise resolves only once the WAL
 * frames of its transaction are on disk, so an acknowledged write survives
 * kill -9 and power loss. A clean close leaves the file in rollback-journal
 * mode, so a volume that comes back read-only still opens and serves reads.
 *
 * Group commit: writes queue up and drain together, one `BEGIN IMMEDIATE …
 * COMMIT` per batch, each write in its own savepoint so one failing write
 * does not undo the others; if the commit fails, every write of the batch
 * fails with `store_write_failed` and the database keeps its previous state.
 * Commits run under `synchronous=NORMAL`, so COMMIT writes the WAL without
 * waiting for the disk; the WAL is then synced off the main thread
 * (`fdatasync` of its own handle of `spike.db-wal`: the sync is per inode)
 * while the next batch runs, and a batch's writes are acknowledged when a
 * sync that started after its commit ends. SQLite still syncs under NORMAL
 * where order matters: the header of a new or restarted WAL before its
 * first frames (with, the first time, the directory that names the file),
 * the WAL before a checkpoint copies it into the database file, and that
 * file before the WAL starts over; so neither the first write nor a
 * checkpoint can lose a frame that was synced.
 *
 * Reads never show a write before it is on disk: a read of a path changed
 * by a batch whose sync is still under way (a list, when the batch created
 * a path; any read, for other writes) waits for that sync, and no new batch
 * commits while reads wait, so they wait for at most two syncs. A failed
 * sync fails its writes and every read and write after it: the kernel may
 * have dropped the pages it could not write, so nothing since the last good
 * sync can be trusted until nexus restarts and SQLite recovers the WAL.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { join } from "node:path";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import {
  assertStoreMeta,
  type AuditAnchorRow,
  compareCodePoints,
  FORMAT2_SCHEMA_VERSION,
  type IntegrityRow,
  type IntegritySnapshot,
  type KeyRange,
  type PendingRootKey,
  type PolicyChange,
  type PolicyRead,
  type PolicySetRow,
  type PolicySnapshot,
  prefixEnd,
  type RestoreCheck,
  type Schema1Converter,
  type Schema1Migration,
  type Schema1Secret,
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
  termBytes,
  type WriteLedger,
  type WriteResult,
} from "./backend.ts";
import { IntegrityError } from "./integrity.ts";

/** The database file name inside the data directory. */
export const DB_FILE_NAME = "spike.db";

/** Most writes committed in one transaction. */
const MAX_BATCH = 512;

/**
 * Writes waiting while a sync is under way that start the next commit at
 * once; fewer wait for the sync's end. Either way they are acknowledged by
 * the sync after it, so committing them early only takes their commit off
 * that sync's critical path.
 */
const EARLY_COMMIT = 4;

// The tables of store format 2 that schema 1 did not have, or had in
// another shape.
const DATA_TABLES = `
CREATE TABLE secrets (
  path TEXT PRIMARY KEY,
  revision INTEGER NOT NULL CHECK (revision >= 1),
  head BLOB NOT NULL
);
CREATE TABLE secret_versions (
  path TEXT NOT NULL,
  version INTEGER NOT NULL CHECK (version >= 1),
  record BLOB NOT NULL,
  PRIMARY KEY (path, version)
);
CREATE TABLE policies (
  name TEXT PRIMARY KEY,
  record BLOB NOT NULL
);
CREATE TABLE policy_set (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  generation INTEGER NOT NULL CHECK (generation >= 1),
  record BLOB NOT NULL
);
`;

// What schema 3 added: the integrity row, the audit anchor, and an index
// that lets unlock read every path's revision in path order from the index
// alone (about 50 ms at 100,000 paths; through the table, five times that).
const INTEGRITY_TABLES = `
CREATE INDEX secrets_revisions ON secrets (path, revision);
CREATE TABLE integrity (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  epoch INTEGER NOT NULL CHECK (epoch >= 0),
  generation INTEGER NOT NULL CHECK (generation >= 0),
  digest BLOB NOT NULL,
  mac BLOB NOT NULL
);
CREATE TABLE audit_anchor (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL,
  hash BLOB NOT NULL,
  mac BLOB NOT NULL
);
`;

const SCHEMA = `
CREATE TABLE meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  schema_version INTEGER NOT NULL,
  store_id BLOB,
  key_check BLOB,
  threshold INTEGER,
  share_count INTEGER,
  keyring BLOB
);
CREATE TABLE shard_commitments (
  share_index INTEGER PRIMARY KEY CHECK (share_index >= 1),
  commitment BLOB NOT NULL
);
${DATA_TABLES}
${INTEGRITY_TABLES}
INSERT INTO meta (id, schema_version) VALUES (1, ${SCHEMA_VERSION});
`;

// The tables of the key and data lifecycle, made when first written, so a
// store made before them opens as it is (also on a read-only volume).
const LIFECYCLE_TABLES = `
CREATE TABLE IF NOT EXISTS pending_root_key (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  key_check BLOB NOT NULL,
  threshold INTEGER NOT NULL,
  share_count INTEGER NOT NULL,
  commitments TEXT NOT NULL,
  keyring BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS restore_check (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  digest BLOB NOT NULL,
  mac BLOB NOT NULL
);
`;

/** Paths converted concurrently during a schema-1 migration. */
const MIGRATION_BATCH = 64;

/** Paths read per statement by a snapshot. */
const SNAPSHOT_PAGE = 256;

/** Options of {@linkcode SqliteBackend.open}. */
export interface SqliteOptions {
  /** SQLite busy timeout in ms (another process holding the write lock). */
  readonly busyTimeoutMs?: number;
  /**
   * Puts the WAL file's data on disk (default: `syncData`, i.e. fdatasync).
   * No write is acknowledged before the sync after its commit resolves;
   * tests pass one that records and holds syncs.
   */
  readonly syncWal?: (wal: Deno.FsFile) => Promise<void>;
  /** The file name inside the data directory (default `spike.db`). */
  readonly fileName?: string;
}

type Row = Record<string, unknown>;

/** A secret path a write changes, and whether it creates it (lists show it). */
interface Touch {
  readonly path: string;
  readonly creates: boolean;
}

interface Job {
  run(): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  /** What the write changes; undefined: anything. */
  readonly touch: Touch | undefined;
}

/** A committed transaction waiting for the sync that puts it on disk. */
interface Unsynced {
  /** Its number in commit order. */
  readonly seq: number;
  /** Acknowledges it. */
  settle(): void;
  /** Fails it: the sync failed. */
  fail(error: unknown): void;
}

/** Reads of the list of paths, which a write creating a path changes. */
const LIST = Symbol("list");

/** What a read shows: one secret path, the list of paths, or anything. */
type ReadScope = string | typeof LIST | undefined;

const bytes = (v: unknown) => v as Uint8Array<ArrayBuffer>;

// What reads and writes are refused with after a failed sync of the WAL.
function syncFailed(error: unknown): ApiError {
  return new ApiError(
    ErrorCode.Internal,
    `The store's journal could not be synced to disk (${
      sqliteReason(error)
    }); restart nexus to recover what is on disk`,
    { cause: error },
  );
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// Secret rows joined with their version rows (path order, then version
// order) into one record set per path.
function groupRecords(rows: Row[]): SecretRecords[] {
  const out: SecretRecords[] = [];
  let current: SecretRecords | undefined;
  let versions: { version: number; record: Sealed }[] = [];
  for (const r of rows) {
    if (current?.path !== r.path) {
      versions = [];
      current = {
        path: r.path as string,
        revision: r.revision as number,
        head: bytes(r.head),
        versions,
      };
      out.push(current);
    }
    if (r.version !== null) {
      versions.push({
        version: r.version as number,
        record: bytes(r.record),
      });
    }
  }
  return out;
}

// A page of paths after `after` (within a prefix range when given) with
// every version row, in one statement.
const RECORDS_SQL = (where: string) =>
  `SELECT s.path, s.revision, s.head, v.version, v.record
   FROM (SELECT path, revision, head FROM secrets WHERE ${where}
         ORDER BY path LIMIT ?) s
   LEFT JOIN secret_versions v ON v.path = s.path
   ORDER BY s.path, v.version`;

function hasTable(db: DatabaseSync, name: string): boolean {
  return db.prepare(
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
  ).get(name) !== undefined;
}

function readPending(db: DatabaseSync): PendingRootKey | undefined {
  if (!hasTable(db, "pending_root_key")) return undefined;
  const row = db.prepare(
    "SELECT key_check, threshold, share_count, commitments FROM pending_root_key WHERE id = 1",
  ).get() as Row | undefined;
  if (!row) return undefined;
  return {
    keyCheck: bytes(row.key_check),
    threshold: row.threshold as number,
    shareCount: row.share_count as number,
    commitments: (JSON.parse(row.commitments as string) as string[]).map((c) =>
      Uint8Array.fromBase64(c)
    ),
  };
}

function readMetaRow(
  db: DatabaseSync,
  statements: Record<string, StatementSync>,
): StoreMeta | undefined {
  const row = statements.meta!.get() as Row;
  if (row.store_id === null) return undefined;
  const commitments = (statements.commitments!.all() as Row[]).map((r) =>
    bytes(r.commitment)
  );
  const pending = readPending(db);
  return {
    storeId: bytes(row.store_id),
    keyCheck: bytes(row.key_check),
    threshold: row.threshold as number,
    shareCount: row.share_count as number,
    commitments,
    schemaVersion: row.schema_version as number,
    ...(pending ? { pending } : {}),
  };
}

function metaStatements(db: DatabaseSync): Record<string, StatementSync> {
  const q = (sql: string) => db.prepare(sql);
  return {
    meta: q(
      "SELECT schema_version, store_id, key_check, threshold, share_count FROM meta WHERE id = 1",
    ),
    commitments: q(
      "SELECT share_index, commitment FROM shard_commitments ORDER BY share_index",
    ),
    initMeta: q(
      "UPDATE meta SET store_id = ?, key_check = ?, threshold = ?, share_count = ? WHERE id = 1 AND store_id IS NULL",
    ),
    addCommitment: q(
      "INSERT INTO shard_commitments (share_index, commitment) VALUES (?, ?)",
    ),
  };
}

function writeFailed(error: unknown): ApiError {
  return new ApiError(
    ErrorCode.StoreUnavailable,
    `Store write failed: ${sqliteReason(error)}`,
    { cause: error },
  );
}

// SQLite's own text (e.g. "database or disk is full"); it names tables and
// columns, never bound values.
function sqliteReason(error: unknown): string {
  return error instanceof Error ? error.message : "unknown error";
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

// A file that has the mode already is left alone: on a read-only volume
// chmod fails even when it would change nothing.
function chmodIfPresent(path: string, mode: number): void {
  try {
    if (((Deno.statSync(path).mode ?? 0) & 0o777) !== mode) {
      Deno.chmodSync(path, mode);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** The SQLite backend. Create with {@linkcode SqliteBackend.open}. */
export class SqliteBackend implements StoreBackend {
  /** Always `sqlite`. */
  readonly kind = "sqlite";
  /** The database file path. */
  readonly location: string;
  #db: DatabaseSync;
  #meta: Record<string, StatementSync>;
  // Prepared once the tables are in format 2.
  #stmt: Record<string, StatementSync> | undefined;
  // Prepared once the integrity tables exist (schema 3).
  #integrity: Record<string, StatementSync> | undefined;
  #ledger: WriteLedger | undefined;
  #queue: Job[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #migrating = false;
  #closing = false;
  #closed = false;
  // Undefined without WAL: COMMIT syncs (synchronous=FULL).
  readonly #syncWal: ((wal: Deno.FsFile) => Promise<void>) | undefined;
  // The WAL file as this backend last opened it, to sync it.
  #wal: Deno.FsFile | undefined;
  // Transactions committed, and how many of them are on disk (in order).
  #committed = 0;
  #durable = 0;
  #syncing = false;
  #unsynced: Unsynced[] = [];
  // The last transaction that changed a path, created a path, or changed
  // anything else; reads of what one not yet on disk changed wait.
  #changedPaths = new Map<string, number>();
  #changedList = 0;
  #changedAll = 0;
  // Reads (and a closing store) waiting for the sync under way to end.
  #waiters: { resolve(): void; reject(error: unknown): void }[] = [];
  // Set when a sync failed; every read and write is refused from then on.
  #broken: unknown;

  private constructor(
    file: string,
    db: DatabaseSync,
    version: number,
    syncWal: ((wal: Deno.FsFile) => Promise<void>) | undefined,
  ) {
    this.location = file;
    this.#db = db;
    this.#syncWal = syncWal;
    this.#meta = metaStatements(db);
    if (version >= FORMAT2_SCHEMA_VERSION) this.#stmt = prepareData(db);
    if (version === SCHEMA_VERSION) this.#integrity = prepareIntegrity(db);
  }

  /**
   * Opens (creating if needed) `<dataDir>/spike.db`. The directory must
   * already exist with mode 0700 (see `data_dir.ts`); the file and its WAL
   * and shared-memory files get mode 0600. A schema-1 file opens as it is,
   * with {@linkcode schema1} set: its meta is readable, and the store
   * migrates it when it is first unlocked.
   *
   * @param dataDir the data directory
   * @param options SQLite settings
   * @returns the backend
   * @throws {StoreError} when the file is not a SPIKE store, has a newer
   * schema, or cannot be opened
   */
  static open(dataDir: string, options: SqliteOptions = {}): SqliteBackend {
    const file = join(dataDir, options.fileName ?? DB_FILE_NAME);
    // Create the file ourselves so it never exists with a looser mode.
    try {
      // An existing file is not opened for writing here: on a read-only
      // volume SQLite opens it read-only, reads go on and writes fail.
      if (!isFile(file)) {
        Deno.openSync(file, { create: true, write: true, mode: 0o600 }).close();
      }
      chmodIfPresent(file, 0o600);
    } catch (e) {
      throw new StoreError(`Cannot create the database file ${file}`, {
        cause: e,
      });
    }
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(file, { timeout: options.busyTimeoutMs ?? 5000 });
    } catch (e) {
      throw new StoreError(`Cannot open the database file ${file}`, {
        cause: e,
      });
    }
    try {
      const wal = enableWal(db, file);
      // The schema is created with a synced commit; from then on commits
      // in WAL mode leave the sync to the group commit (module comment).
      // Without WAL (a read-only volume, where no write commits) SQLite
      // syncs in COMMIT as before.
      db.exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;");
      const version = createOrCheckSchema(db, file);
      if (wal) db.exec("PRAGMA synchronous = NORMAL");
      chmodIfPresent(`${file}-wal`, 0o600);
      chmodIfPresent(`${file}-shm`, 0o600);
      return new SqliteBackend(
        file,
        db,
        version,
        wal ? options.syncWal ?? ((f) => f.syncData()) : undefined,
      );
    } catch (e) {
      db.close();
      if (e instanceof StoreError) throw e;
      throw new StoreError(`Cannot open the database file ${file}`, {
        cause: e,
      });
    }
  }

  /** See {@linkcode StoreBackend.schema1}. */
  get schema1(): Schema1Migration | undefined {
    if (this.#stmt) return undefined;
    return { run: (convert, onProgress) => this.#migrate(convert, onProgress) };
  }

  // The data statements; absent while the tables are in schema 1.
  get #data(): Record<string, StatementSync> {
    if (!this.#stmt) {
      throw new StoreError(
        "The store is in schema 1 and must be migrated (unlock it) first",
      );
    }
    return this.#stmt;
  }

  // Reads run synchronously between write batches, so they see only
  // committed data, each in one snapshot; what a batch not yet on disk
  // changed, they see once it is.
  #read<T>(fn: () => T, scope?: ReadScope): Promise<T> {
    if (
      !this.#closed && this.#broken === undefined && this.#unsyncedIn(scope)
    ) {
      return this.#nextSync().then(() => this.#read(fn, scope));
    }
    try {
      if (this.#closed) throw new StoreError("Store is closed");
      if (this.#broken !== undefined) throw syncFailed(this.#broken);
      return Promise.resolve(fn());
    } catch (e) {
      if (e instanceof StoreError) return Promise.reject(e);
      return Promise.reject(
        new ApiError(
          ErrorCode.Internal,
          `Store read failed: ${sqliteReason(e)}`,
          { cause: e },
        ),
      );
    }
  }

  #write<T>(run: () => T, touch?: Touch): Promise<T> {
    if (this.#closed || this.#closing) {
      return Promise.reject(new StoreError("Store is closed"));
    }
    if (this.#broken !== undefined) {
      return Promise.reject(writeFailed(syncFailed(this.#broken)));
    }
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        run,
        resolve: resolve as (v: unknown) => void,
        reject,
        touch,
      });
      this.#schedule(false);
    });
  }

  // Drains the queue on the next turn of the event loop: at once while no
  // sync is under way, else when a few writes wait or the sync has ended.
  #schedule(syncEnded: boolean): void {
    if (this.#timer !== undefined || this.#queue.length === 0) return;
    if (!syncEnded && this.#syncing && this.#queue.length < EARLY_COMMIT) {
      return;
    }
    this.#timer = setTimeout(() => this.#drain(), 0);
  }

  #drain(): void {
    this.#timer = undefined;
    // The migration holds the transaction; it drains the queue when done.
    if (this.#migrating) return;
    // Reads wait for the sync under way; a batch committed now could make
    // them wait again. The sync's end drains.
    if (this.#syncing && this.#waiters.length > 0 && !this.#closing) return;
    const batch = this.#queue.splice(0, MAX_BATCH);
    this.#schedule(false);
    if (batch.length === 0) return;
    const db = this.#db;
    try {
      db.exec("BEGIN IMMEDIATE");
    } catch (e) {
      for (const job of batch) job.reject(writeFailed(e));
      return;
    }
    // The ledger follows the transaction: each job's calls are undone with
    // its savepoint, all of them with the batch.
    const ledger = this.#ledger;
    const outcomes:
      ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    for (const job of batch) {
      const mark = ledger?.mark() ?? 0;
      try {
        db.exec("SAVEPOINT job");
        const value = job.run();
        db.exec("RELEASE job");
        outcomes.push({ ok: true, value });
      } catch (e) {
        ledger?.rollbackTo(mark);
        if (!db.isTransaction) {
          // SQLite rolled the whole transaction back (disk full, I/O
          // error): nothing of this batch is stored.
          ledger?.rollbackTo(0);
          for (const j of batch) j.reject(writeFailed(e));
          return;
        }
        try {
          db.exec("ROLLBACK TO job; RELEASE job");
        } catch (rollbackError) {
          this.#abort(batch, rollbackError);
          return;
        }
        outcomes.push({
          ok: false,
          error: e instanceof StoreError || e instanceof ApiError
            ? e
            : writeFailed(e),
        });
      }
    }
    try {
      // One integrity row for the whole batch, in its transaction.
      const sealed = ledger?.seal();
      if (sealed) this.#storeIntegrity(sealed);
      db.exec("COMMIT");
    } catch (e) {
      this.#abort(batch, e);
      return;
    }
    // On disk only once the sync after it ends: until then, a checkpoint
    // must not name this row.
    ledger?.commit(false);
    const row = ledger?.row;
    this.#committedBatch(
      batch,
      outcomes,
      ledger && row ? () => ledger.synced(row) : undefined,
    );
  }

  // A batch is committed, not yet on disk: its writes are acknowledged (or
  // fail), and `onDisk` is called, when the sync after it ends.
  #committedBatch(
    batch: Job[],
    outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[],
    onDisk: (() => void) | undefined,
  ): void {
    const seq = ++this.#committed;
    batch.forEach((job, i) => {
      if (!outcomes[i]!.ok) return;
      const touch = job.touch;
      if (touch === undefined) {
        this.#changedAll = seq;
      } else {
        this.#changedPaths.set(touch.path, seq);
        if (touch.creates) this.#changedList = seq;
      }
    });
    this.#unsynced.push({
      seq,
      settle: () => {
        onDisk?.();
        batch.forEach((job, i) => {
          const outcome = outcomes[i]!;
          if (outcome.ok) job.resolve(outcome.value);
          else job.reject(outcome.error);
        });
      },
      fail: (error) => {
        for (const job of batch) job.reject(writeFailed(error));
      },
    });
    this.#startSync();
  }

  // A transaction committed outside the queue (the migration) is on disk.
  #onDisk(): Promise<void> {
    return new Promise((settle, fail) => {
      const seq = ++this.#committed;
      this.#changedAll = seq;
      this.#unsynced.push({ seq, settle, fail });
      this.#startSync();
    });
  }

  // Whether a committed transaction not yet on disk changed what a read
  // of `scope` shows.
  #unsyncedIn(scope: ReadScope): boolean {
    const durable = this.#durable;
    if (this.#committed === durable) return false;
    if (scope === undefined || this.#changedAll > durable) return true;
    if (scope === LIST) return this.#changedList > durable;
    return (this.#changedPaths.get(scope) ?? 0) > durable;
  }

  // Resolves when the sync under way ends; rejects if it fails.
  #nextSync(): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#waiters.push({ resolve, reject })
    );
  }

  // Syncs the WAL unless a sync is under way (its end starts the next).
  // One sync covers every transaction committed before it starts.
  #startSync(): void {
    if (
      this.#syncing || this.#broken !== undefined ||
      this.#committed === this.#durable
    ) return;
    this.#syncing = true;
    const upTo = this.#committed;
    this.#syncWalFile().then(
      () => this.#synced(upTo),
      (e) => this.#syncFailed(e),
    );
  }

  // Opens the WAL file the first time, or again once the file opened has
  // no name left (SQLite deletes it when its last connection closes; a sync
  // of that file would make nothing durable), then syncs it. The check is
  // an fstat of the open file: no path lookup per sync.
  async #syncWalFile(): Promise<void> {
    if (this.#syncWal === undefined) return;
    if (this.#wal === undefined || this.#wal.statSync().nlink === 0) {
      this.#wal?.close();
      this.#wal = undefined;
      this.#wal = Deno.openSync(`${this.location}-wal`, { read: true });
    }
    await this.#syncWal(this.#wal);
  }

  #synced(upTo: number): void {
    this.#syncing = false;
    this.#durable = upTo;
    const done = this.#unsynced.findIndex((u) => u.seq > upTo);
    const settled = done === -1
      ? this.#unsynced.splice(0)
      : this.#unsynced.splice(0, done);
    if (upTo === this.#committed) {
      this.#changedPaths.clear();
    } else {
      for (const [path, seq] of this.#changedPaths) {
        if (seq <= upTo) this.#changedPaths.delete(path);
      }
    }
    for (const u of settled) u.settle();
    for (const w of this.#waiters.splice(0)) w.resolve();
    this.#startSync();
    this.#schedule(true);
  }

  #syncFailed(error: unknown): void {
    this.#syncing = false;
    this.#broken = error;
    for (const u of this.#unsynced.splice(0)) u.fail(syncFailed(error));
    for (const job of this.#queue.splice(0)) {
      job.reject(writeFailed(syncFailed(error)));
    }
    for (const w of this.#waiters.splice(0)) w.reject(syncFailed(error));
  }

  #abort(batch: Job[], error: unknown): void {
    this.#ledger?.rollbackTo(0);
    try {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
    } catch {
      // The transaction is gone either way; the jobs fail below.
    }
    for (const job of batch) {
      job.reject(error instanceof IntegrityError ? error : writeFailed(error));
    }
  }

  /** See {@linkcode StoreBackend.readMeta}. */
  readMeta(): Promise<StoreMeta | undefined> {
    return this.#read(() => readMetaRow(this.#db, this.#meta));
  }

  /** See {@linkcode StoreBackend.initMeta}. */
  initMeta(meta: StoreMeta): Promise<void> {
    try {
      assertStoreMeta(meta);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#write(() => {
      const result = this.#meta.initMeta!.run(
        meta.storeId,
        meta.keyCheck,
        meta.threshold,
        meta.shareCount,
      );
      if (result.changes === 0) {
        throw new StoreError("Store meta is already initialized");
      }
      meta.commitments.forEach((c, i) =>
        this.#meta.addCommitment!.run(i + 1, c)
      );
    });
  }

  /** See {@linkcode StoreBackend.readKeyring}. */
  readKeyring(): Promise<Sealed | undefined> {
    return this.#read(() => {
      const row = this.#data.keyring!.get() as Row | undefined;
      return row?.keyring === null ? undefined : bytes(row?.keyring);
    });
  }

  /** See {@linkcode StoreBackend.initKeyring}. */
  initKeyring(keyring: Sealed): Promise<Sealed> {
    return this.#write(() => {
      const s = this.#data;
      s.initKeyring!.run(keyring);
      const row = s.keyring!.get() as Row;
      if (row.keyring === null) {
        throw new StoreError("The store has no meta yet");
      }
      return bytes(row.keyring);
    });
  }

  /** See {@linkcode StoreBackend.writeKeyring}. */
  writeKeyring(expected: Sealed, keyring: Sealed): Promise<boolean> {
    return this.#write(() =>
      this.#data.writeKeyring!.run(keyring, expected).changes === 1
    );
  }

  /** See {@linkcode StoreBackend.writePendingRootKey}. */
  writePendingRootKey(
    currentKeyCheck: Uint8Array<ArrayBuffer>,
    pending: PendingRootKey,
    keyring: Sealed,
  ): Promise<boolean> {
    return this.#write(() => {
      const meta = readMetaRow(this.#db, this.#meta);
      if (!meta || !equalBytes(meta.keyCheck, currentKeyCheck)) return false;
      assertStoreMeta({ ...meta, ...pending });
      this.#db.exec(LIFECYCLE_TABLES);
      this.#db.prepare(
        `INSERT OR REPLACE INTO pending_root_key
         (id, key_check, threshold, share_count, commitments, keyring)
         VALUES (1, ?, ?, ?, ?, ?)`,
      ).run(
        pending.keyCheck,
        pending.threshold,
        pending.shareCount,
        JSON.stringify(pending.commitments.map((c) => c.toBase64())),
        keyring,
      );
      return true;
    });
  }

  /** See {@linkcode StoreBackend.commitPendingRootKey}. */
  commitPendingRootKey(
    pendingKeyCheck: Uint8Array<ArrayBuffer>,
    expectedKeyring?: Sealed,
  ): Promise<boolean> {
    return this.#write(() => {
      const db = this.#db;
      const pending = readPending(db);
      if (!pending || !equalBytes(pending.keyCheck, pendingKeyCheck)) {
        return false;
      }
      if (expectedKeyring) {
        const live = (this.#data.keyring!.get() as Row | undefined)?.keyring;
        if (
          !(live instanceof Uint8Array && equalBytes(live, expectedKeyring))
        ) {
          return false;
        }
      }
      const keyring = (db.prepare(
        "SELECT keyring FROM pending_root_key WHERE id = 1",
      ).get() as Row).keyring;
      db.prepare(
        "UPDATE meta SET key_check = ?, threshold = ?, share_count = ?, keyring = ? WHERE id = 1",
      ).run(
        pending.keyCheck,
        pending.threshold,
        pending.shareCount,
        bytes(keyring),
      );
      db.exec("DELETE FROM shard_commitments; DELETE FROM pending_root_key;");
      pending.commitments.forEach((c, i) =>
        this.#meta.addCommitment!.run(i + 1, c)
      );
      return true;
    });
  }

  /** See {@linkcode StoreBackend.clearPendingRootKey}. */
  clearPendingRootKey(): Promise<void> {
    return this.#write(() => {
      if (hasTable(this.#db, "pending_root_key")) {
        this.#db.exec("DELETE FROM pending_root_key");
      }
    });
  }

  /** See {@linkcode StoreBackend.openSnapshot}. */
  openSnapshot(): Promise<StoreSnapshot> {
    // Like every read, a backup shows nothing that is not on disk yet: it
    // starts once what is committed is synced (the snapshot is taken
    // before anything else commits).
    if (
      !this.#closed && this.#broken === undefined && this.#unsyncedIn(undefined)
    ) {
      return this.#nextSync().then(() => this.openSnapshot());
    }
    // A second connection in one read transaction: under WAL it keeps
    // seeing the data as of its first read while this connection writes.
    let db: DatabaseSync | undefined;
    try {
      if (this.#closed) throw new StoreError("Store is closed");
      if (this.#broken !== undefined) throw syncFailed(this.#broken);
      this.#data;
      db = new DatabaseSync(this.location, { readOnly: true, timeout: 5000 });
      db.exec("BEGIN");
      const meta = readMetaRow(db, metaStatements(db));
      const keyring = (db.prepare("SELECT keyring FROM meta WHERE id = 1")
        .get() as Row | undefined)?.keyring;
      if (!meta || keyring === null || keyring === undefined) {
        throw new StoreError("The store has no meta or keyring yet");
      }
      return Promise.resolve(snapshotOf(db, meta, bytes(keyring)));
    } catch (e) {
      db?.close();
      return Promise.reject(
        e instanceof StoreError ? e : new ApiError(
          ErrorCode.Internal,
          `Store snapshot failed: ${sqliteReason(e)}`,
          { cause: e },
        ),
      );
    }
  }

  /** See {@linkcode StoreBackend.importStore}. */
  importStore(store: StoreImport): Promise<void> {
    return this.#exclusive(async (db) => {
      if (readMetaRow(db, this.#meta)) {
        throw new StoreError("The store is not empty");
      }
      assertStoreMeta(store.meta);
      const s = this.#data;
      const meta = store.meta;
      this.#meta.initMeta!.run(
        meta.storeId,
        meta.keyCheck,
        meta.threshold,
        meta.shareCount,
      );
      meta.commitments.forEach((c, i) =>
        this.#meta.addCommitment!.run(i + 1, c)
      );
      s.initKeyring!.run(store.keyring);
      const insertHead = db.prepare(
        "INSERT INTO secrets (path, revision, head) VALUES (?, ?, ?)",
      );
      const insertPolicy = db.prepare(
        "INSERT INTO policies (name, record) VALUES (?, ?)",
      );
      for await (const row of store.rows) {
        if (row.kind === "secret") {
          const r = row.records;
          insertHead.run(r.path, r.revision, r.head);
          for (const v of r.versions) {
            s.insertVersion!.run(r.path, v.version, v.record);
          }
        } else if (row.kind === "policy") {
          insertPolicy.run(row.name, row.record);
        } else {
          db.prepare(
            "INSERT INTO policy_set (id, generation, record) VALUES (1, ?, ?)",
          ).run(row.set.generation, row.set.record);
        }
      }
      const check = await store.check();
      db.exec(LIFECYCLE_TABLES);
      db.prepare(
        "INSERT INTO restore_check (id, digest, mac) VALUES (1, ?, ?)",
      ).run(check.digest, check.mac);
    });
  }

  /** See {@linkcode StoreBackend.readRestoreCheck}. */
  readRestoreCheck(): Promise<RestoreCheck | undefined> {
    return this.#read(() => {
      if (!hasTable(this.#db, "restore_check")) return undefined;
      const row = this.#db.prepare(
        "SELECT digest, mac FROM restore_check WHERE id = 1",
      ).get() as Row | undefined;
      return row && { digest: bytes(row.digest), mac: bytes(row.mac) };
    });
  }

  /** See {@linkcode StoreBackend.clearRestoreCheck}. */
  clearRestoreCheck(): Promise<void> {
    return this.#write(() => {
      if (hasTable(this.#db, "restore_check")) {
        this.#db.exec("DELETE FROM restore_check");
      }
    });
  }

  /** See {@linkcode StoreBackend.readSecret}. */
  readSecret(path: string, version = 0): Promise<SecretRow | undefined> {
    return this.#read(() => {
      const r = this.#data.secret!.get(path, version) as Row | undefined;
      if (!r) return undefined;
      return {
        revision: r.revision as number,
        head: bytes(r.head),
        versions: {
          count: r.n as number,
          lowest: (r.lo ?? 0) as number,
          highest: (r.hi ?? 0) as number,
        },
        ...(r.record === null ? {} : { record: bytes(r.record) }),
      };
    }, path);
  }

  /** See {@linkcode StoreBackend.writeSecret}. */
  writeSecret(
    path: string,
    expectedRevision: number,
    write: SecretWrite,
  ): Promise<WriteResult> {
    return this.#write((): WriteResult => {
      const s = this.#data;
      const revision = expectedRevision + 1;
      // The compare-and-set is the statement itself; nothing else is read.
      const cas = expectedRevision === 0
        ? s.insertHead!.run(path, revision, write.head)
        : s.updateHead!.run(revision, write.head, path, expectedRevision);
      if (cas.changes === 0) return { ok: false, conflict: true };
      const v = write.insert;
      if (v && s.insertVersion!.run(path, v.version, v.record).changes === 0) {
        // The head said this number was free: a row was put there.
        throw new IntegrityError(
          `Secret "${path}" already has a row for version ${v.version}, which its head does not know`,
        );
      }
      if (write.pruneBelow !== undefined) {
        s.prune!.run(path, write.pruneBelow);
      }
      this.#ledger?.secretWritten(path, expectedRevision, revision);
      return { ok: true, revision };
    }, { path, creates: expectedRevision === 0 });
  }

  // At the end of a batch: replaces the integrity row, if it is still the
  // one the ledger last wrote.
  #storeIntegrity(
    update: { row: IntegrityRow; replaces: Uint8Array<ArrayBuffer> },
  ): void {
    const { row, replaces } = update;
    const changed = this.#integrityStatements.update!.run(
      row.epoch,
      row.generation,
      row.digest,
      row.mac,
      replaces,
    ).changes;
    if (changed === 0) {
      throw new IntegrityError(
        "The store's integrity row is not the one nexus wrote last: the store was changed or replaced underneath nexus",
      );
    }
  }

  get #integrityStatements(): Record<string, StatementSync> {
    if (!this.#integrity) {
      throw new StoreError(
        "The store has no integrity row yet: unlock it first",
      );
    }
    return this.#integrity;
  }

  /** See {@linkcode StoreBackend.readIntegrity}. */
  readIntegrity(): Promise<IntegritySnapshot> {
    return this.#read(() => {
      const s = this.#data;
      const rows = s.revisions!.all() as unknown as [string, number][];
      const set = s.policySet!.get() as Row | undefined;
      const stored = this.#integrity?.read?.get() as Row | undefined;
      return {
        ...(stored
          ? {
            row: {
              epoch: stored.epoch as number,
              generation: stored.generation as number,
              digest: bytes(stored.digest),
              mac: bytes(stored.mac),
            },
          }
          : {}),
        // A store of schema 1 or 2 gets its first row when unlocked.
        needsAnchor: this.#integrity === undefined,
        paths: rows.map((r) => r[0]),
        revisions: rows.map((r) => r[1]),
        policyGeneration: (set?.generation ?? 0) as number,
      };
    });
  }

  /** See {@linkcode StoreBackend.anchorIntegrity}. */
  async anchorIntegrity(row: IntegrityRow): Promise<void> {
    const db = this.#db;
    await this.#write(() => {
      if (!this.#stmt) {
        throw new StoreError("A schema-1 store is migrated before anchoring");
      }
      if (!this.#integrity) {
        db.exec(INTEGRITY_TABLES);
        db.prepare("UPDATE meta SET schema_version = ? WHERE id = 1").run(
          SCHEMA_VERSION,
        );
      }
      db.prepare(
        `INSERT INTO integrity (id, epoch, generation, digest, mac)
         VALUES (1, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch,
           generation = excluded.generation, digest = excluded.digest,
           mac = excluded.mac`,
      ).run(row.epoch, row.generation, row.digest, row.mac);
    });
    // Only now: had the transaction rolled back, the tables would not exist.
    this.#integrity ??= prepareIntegrity(db);
  }

  /** See {@linkcode StoreBackend.attachLedger}. */
  attachLedger(ledger: WriteLedger | undefined): void {
    if (ledger && !this.#integrity) {
      throw new StoreError("Anchor the store's integrity before writing");
    }
    this.#ledger = ledger;
  }

  /** See {@linkcode StoreBackend.readAuditAnchor}: one nexus, one chain. */
  readAuditAnchor(_name: string): Promise<AuditAnchorRow | undefined> {
    return this.#read(() => {
      const r = this.#integrity?.auditAnchor?.get() as Row | undefined;
      return r &&
        { seq: r.seq as number, hash: bytes(r.hash), mac: bytes(r.mac) };
    });
  }

  /** See {@linkcode StoreBackend.writeAuditAnchor}: one nexus, one chain. */
  writeAuditAnchor(_name: string, anchor: AuditAnchorRow): Promise<void> {
    return this.#write(() => {
      this.#integrityStatements.writeAuditAnchor!.run(
        anchor.seq,
        anchor.hash,
        anchor.mac,
      );
    });
  }

  /** See {@linkcode StoreBackend.listSecretPaths}. */
  listSecretPaths(range: KeyRange): Promise<string[]> {
    return this.#read(() => {
      const s = this.#data;
      const prefix = range.prefix ?? "";
      const after = range.after ?? "";
      const limit = range.limit ?? -1;
      // One lower bound, the higher: given both, SQLite seeks by one and
      // filters by the other, so a prefix read from the start of the table.
      const rows = (prefix === ""
        ? s.pathsFrom!.all(after, limit)
        : compareCodePoints(after, prefix) >= 0
        ? s.pathsAfterIn!.all(after, prefixEnd(prefix), limit)
        : s.pathsIn!.all(prefix, prefixEnd(prefix), limit)) as unknown as [
          string,
        ][];
      return rows.map((r) =>
        r[0]
      );
    }, LIST);
  }

  /** See {@linkcode StoreBackend.readSecretRecords}. */
  readSecretRecords(range: KeyRange): Promise<SecretRecords[]> {
    return this.#read(() => {
      const s = this.#data;
      const prefix = range.prefix ?? "";
      const after = range.after ?? "";
      const limit = range.limit ?? -1;
      const rows = prefix === ""
        ? s.recordsFrom!.all(after, limit)
        : s.recordsIn!.all(after, prefix, prefixEnd(prefix), limit);
      return groupRecords(rows as Row[]);
    });
  }

  /** See {@linkcode StoreBackend.resealSecret}. */
  resealSecret(
    path: string,
    revision: number,
    head: Sealed,
    versions: readonly { readonly version: number; readonly record: Sealed }[],
  ): Promise<boolean> {
    return this.#write(() => {
      const s = this.#data;
      if (s.resealHead!.run(head, path, revision).changes === 0) return false;
      for (const v of versions) s.resealVersion!.run(v.record, path, v.version);
      return true;
    }, { path, creates: false });
  }

  /** See {@linkcode StoreBackend.resealPolicies}. */
  resealPolicies(
    generation: number,
    set: Sealed,
    rows: readonly { readonly name: string; readonly record: Sealed }[],
  ): Promise<boolean> {
    return this.#write(() => {
      const s = this.#data;
      if (s.resealPolicySet!.run(set, generation).changes === 0) return false;
      for (const row of rows) s.resealPolicy!.run(row.record, row.name);
      return true;
    });
  }

  /** See {@linkcode StoreBackend.countRecordsBelowTerm}. */
  countRecordsBelowTerm(term: number): Promise<number> {
    return this.#read(() =>
      (this.#data.countBelow!.get(termBytes(term)) as Row).n as number
    );
  }

  /** See {@linkcode StoreBackend.readPolicySet}. */
  readPolicySet(): Promise<PolicySetRow | undefined> {
    return this.#read(() => {
      const r = this.#data.policySet!.get() as Row | undefined;
      return r &&
        { generation: r.generation as number, record: bytes(r.record) };
    });
  }

  /** See {@linkcode StoreBackend.readPolicy}. */
  readPolicy(name: string): Promise<PolicyRead> {
    return this.#read(() => {
      const r = this.#data.policy!.get(name) as Row;
      return {
        ...(r.generation === null ? {} : {
          set: {
            generation: r.generation as number,
            record: bytes(r.set_record),
          },
        }),
        ...(r.record === null ? {} : { record: bytes(r.record) }),
      };
    });
  }

  /** See {@linkcode StoreBackend.readPolicies}. */
  readPolicies(): Promise<PolicySnapshot> {
    return this.#read(() => {
      const s = this.#data;
      const set = s.policySet!.get() as Row | undefined;
      const rows = (s.policies!.all() as Row[]).map((r) => ({
        name: r.name as string,
        record: bytes(r.record),
      }));
      return {
        ...(set
          ? {
            set: {
              generation: set.generation as number,
              record: bytes(set.record),
            },
          }
          : {}),
        rows,
      };
    });
  }

  /** See {@linkcode StoreBackend.writePolicy}. */
  writePolicy(
    expectedGeneration: number,
    set: Sealed,
    change: PolicyChange,
  ): Promise<WriteResult> {
    return this.#write((): WriteResult => {
      const s = this.#data;
      const generation = expectedGeneration + 1;
      const cas = expectedGeneration === 0
        ? s.insertPolicySet!.run(set)
        : s.updatePolicySet!.run(generation, set, expectedGeneration);
      if (cas.changes === 0) return { ok: false, conflict: true };
      if (change.record) s.upsertPolicy!.run(change.name, change.record);
      else s.deletePolicy!.run(change.name);
      this.#ledger?.policyWritten(expectedGeneration, generation);
      return { ok: true, revision: generation };
    });
  }

  // Rewrites a schema-1 store in format 2 in one transaction. Nexus is
  // locked while this runs, so no request reads the half-written tables.
  async #migrate(
    convert: Schema1Converter,
    onProgress?: (done: number, total: number) => void,
  ): Promise<void> {
    if (this.#stmt) return;
    await this.#exclusive((db) => migrateSchema1(db, convert, onProgress));
    this.#stmt = prepareData(this.#db);
  }

  // Runs `work` in one transaction held across its awaits (a migration, an
  // import); queued writes wait for the end. A throw rolls everything back.
  async #exclusive(work: (db: DatabaseSync) => Promise<void>): Promise<void> {
    if (this.#closed) throw new StoreError("Store is closed");
    const db = this.#db;
    this.#migrating = true;
    try {
      db.exec("BEGIN IMMEDIATE");
      try {
        await work(db);
        db.exec("COMMIT");
      } catch (e) {
        if (db.isTransaction) db.exec("ROLLBACK");
        throw e;
      }
    } finally {
      this.#migrating = false;
      this.#schedule(true);
    }
    await this.#onDisk();
  }

  /** Commits queued writes, waits until they are on disk, then closes. */
  async close(): Promise<void> {
    if (this.#closed || this.#closing) return;
    this.#closing = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#queue.length > 0) this.#drain();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#broken === undefined && this.#committed > this.#durable) {
      await this.#nextSync().catch(() => {});
    }
    this.#closed = true;
    this.#wal?.close();
    this.#wal = undefined;
    // Leave the file in rollback-journal mode: a WAL file needs its
    // shared-memory file, which a read-only volume cannot create, so a
    // store closed in WAL mode would not open there at all. The next
    // writable open turns WAL back on.
    try {
      this.#db.exec("PRAGMA journal_mode = DELETE");
    } catch {
      // A read-only volume, or another connection: the file stays in WAL.
    }
    this.#db.close();
  }
}

// The statements of the format-2 tables, prepared once and reused.
function prepareData(db: DatabaseSync): Record<string, StatementSync> {
  const q = (sql: string) => db.prepare(sql);
  const paths = (sql: string) => {
    const stmt = q(sql) as StatementSync & {
      setReturnArrays(enabled: boolean): void;
    };
    // Arrays, not one object per row: a full listing of 100,000 paths
    // takes a third of the time. (Deno's node:sqlite has it; its type
    // declarations do not yet.)
    stmt.setReturnArrays(true);
    return stmt;
  };
  const below = (table: string, column: string) =>
    `(SELECT COUNT(*) FROM ${table} WHERE substr(${column}, 2, 4) < ?1)`;
  return {
    keyring: q("SELECT keyring FROM meta WHERE id = 1"),
    initKeyring: q(
      "UPDATE meta SET keyring = ? WHERE id = 1 AND keyring IS NULL AND store_id IS NOT NULL",
    ),
    writeKeyring: q("UPDATE meta SET keyring = ? WHERE id = 1 AND keyring = ?"),
    recordsFrom: q(RECORDS_SQL("path > ?")),
    recordsIn: q(RECORDS_SQL("path > ? AND path >= ? AND path < ?")),
    resealHead: q(
      "UPDATE secrets SET head = ? WHERE path = ? AND revision = ?",
    ),
    resealVersion: q(
      "UPDATE secret_versions SET record = ? WHERE path = ? AND version = ?",
    ),
    resealPolicySet: q(
      "UPDATE policy_set SET record = ? WHERE id = 1 AND generation = ?",
    ),
    resealPolicy: q("UPDATE policies SET record = ? WHERE name = ?"),
    // Record headers are `0x02 ‖ term (4 bytes, big-endian)`: byte-wise
    // comparison of those 4 bytes is numeric comparison of the terms.
    countBelow: q(
      `SELECT ${below("secrets", "head")} + ${
        below("secret_versions", "record")
      } + ${below("policies", "record")} + ${
        below("policy_set", "record")
      } AS n`,
    ),
    // The head, which version rows exist, and the asked version's record.
    secret: q(
      `SELECT s.revision, s.head, v.n, v.lo, v.hi, r.record
       FROM secrets s
       CROSS JOIN (SELECT COUNT(*) AS n, MIN(version) AS lo, MAX(version) AS hi
                   FROM secret_versions WHERE path = ?1) v
       LEFT JOIN secret_versions r ON r.path = ?1 AND r.version = ?2
       WHERE s.path = ?1`,
    ),
    insertHead: q(
      "INSERT INTO secrets (path, revision, head) VALUES (?, ?, ?) ON CONFLICT (path) DO NOTHING",
    ),
    updateHead: q(
      "UPDATE secrets SET revision = ?, head = ? WHERE path = ? AND revision = ?",
    ),
    insertVersion: q(
      "INSERT INTO secret_versions (path, version, record) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    ),
    prune: q("DELETE FROM secret_versions WHERE path = ? AND version < ?"),
    pathsFrom: paths(
      "SELECT path FROM secrets WHERE path > ? ORDER BY path LIMIT ?",
    ),
    revisions: paths("SELECT path, revision FROM secrets ORDER BY path"),
    pathsIn: paths(
      "SELECT path FROM secrets WHERE path >= ? AND path < ? ORDER BY path LIMIT ?",
    ),
    pathsAfterIn: paths(
      "SELECT path FROM secrets WHERE path > ? AND path < ? ORDER BY path LIMIT ?",
    ),
    policySet: q("SELECT generation, record FROM policy_set WHERE id = 1"),
    policy: q(
      `SELECT (SELECT generation FROM policy_set WHERE id = 1) AS generation,
              (SELECT record FROM policy_set WHERE id = 1) AS set_record,
              (SELECT record FROM policies WHERE name = ?) AS record`,
    ),
    policies: q("SELECT name, record FROM policies ORDER BY name"),
    insertPolicySet: q(
      "INSERT INTO policy_set (id, generation, record) VALUES (1, 1, ?) ON CONFLICT (id) DO NOTHING",
    ),
    updatePolicySet: q(
      "UPDATE policy_set SET generation = ?, record = ? WHERE id = 1 AND generation = ?",
    ),
    upsertPolicy: q(
      "INSERT INTO policies (name, record) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET record = excluded.record",
    ),
    deletePolicy: q("DELETE FROM policies WHERE name = ?"),
  };
}

// The statements of the schema-3 tables.
function prepareIntegrity(db: DatabaseSync): Record<string, StatementSync> {
  const q = (sql: string) => db.prepare(sql);
  return {
    read: q(
      "SELECT epoch, generation, digest, mac FROM integrity WHERE id = 1",
    ),
    update: q(
      "UPDATE integrity SET epoch = ?, generation = ?, digest = ?, mac = ? WHERE id = 1 AND mac = ?",
    ),
    auditAnchor: q("SELECT seq, hash, mac FROM audit_anchor WHERE id = 1"),
    writeAuditAnchor: q(
      `INSERT INTO audit_anchor (id, seq, hash, mac) VALUES (1, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
         mac = excluded.mac`,
    ),
  };
}

// A snapshot over a connection that holds one read transaction; disposing
// ends the transaction and closes the connection.
function snapshotOf(
  db: DatabaseSync,
  meta: StoreMeta,
  keyring: Sealed,
): StoreSnapshot {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      db.exec("COMMIT");
    } finally {
      db.close();
    }
  };
  return {
    meta,
    keyring,
    async *rows(): AsyncIterable<SnapshotRow> {
      const page = db.prepare(RECORDS_SQL("path > ?"));
      let after = "";
      for (;;) {
        if (closed) throw new StoreError("The snapshot is closed");
        const records = groupRecords(page.all(after, SNAPSHOT_PAGE) as Row[]);
        for (const r of records) yield { kind: "secret", records: r };
        if (records.length < SNAPSHOT_PAGE) break;
        after = records[records.length - 1]!.path;
      }
      const set = db.prepare(
        "SELECT generation, record FROM policy_set WHERE id = 1",
      ).get() as Row | undefined;
      if (set) {
        yield {
          kind: "policySet",
          set: {
            generation: set.generation as number,
            record: bytes(set.record),
          },
        };
      }
      const policies = db.prepare(
        "SELECT name, record FROM policies ORDER BY name",
      ).all() as Row[];
      for (const p of policies) {
        yield {
          kind: "policy",
          name: p.name as string,
          record: bytes(p.record),
        };
      }
    },
    [Symbol.asyncDispose]: () => {
      close();
      return Promise.resolve();
    },
  };
}

// Inside an open transaction: moves the schema-1 tables aside, converts
// every row into the format-2 tables, and drops the old tables.
async function migrateSchema1(
  db: DatabaseSync,
  convert: Schema1Converter,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  db.exec(`
    ALTER TABLE secret_versions RENAME TO schema1_secret_versions;
    ALTER TABLE secrets RENAME TO schema1_secrets;
    ALTER TABLE policies RENAME TO schema1_policies;
    ALTER TABLE meta ADD COLUMN keyring BLOB;
    ${DATA_TABLES}`);
  const q = (sql: string) => db.prepare(sql);
  const headOf = q(
    "SELECT revision, created_time, updated_time, max_versions FROM schema1_secrets WHERE path = ?",
  );
  const versionsOf = q(
    "SELECT version, deleted, data, created_time, deleted_time FROM schema1_secret_versions WHERE path = ? ORDER BY version",
  );
  const insertHead = q(
    "INSERT INTO secrets (path, revision, head) VALUES (?, ?, ?)",
  );
  const insertVersion = q(
    "INSERT INTO secret_versions (path, version, record) VALUES (?, ?, ?)",
  );
  const paths = (q("SELECT path FROM schema1_secrets ORDER BY path")
    .all() as Row[]).map((r) => r.path as string);
  for (let i = 0; i < paths.length; i += MIGRATION_BATCH) {
    const batch = paths.slice(i, i + MIGRATION_BATCH).map(
      (path): Schema1Secret => {
        const h = headOf.get(path) as Row;
        return {
          path,
          revision: h.revision as number,
          createdTime: bytes(h.created_time),
          updatedTime: bytes(h.updated_time),
          maxVersions: bytes(h.max_versions),
          versions: (versionsOf.all(path) as Row[]).map((v) => ({
            version: v.version as number,
            deleted: v.deleted === 1,
            data: bytes(v.data),
            createdTime: bytes(v.created_time),
            deletedTime: bytes(v.deleted_time),
          })),
        };
      },
    );
    const converted = await Promise.all(batch.map((s) => convert.secret(s)));
    converted.forEach((c, j) => {
      const path = batch[j]!.path;
      insertHead.run(path, c.revision, c.head);
      for (const r of c.records) insertVersion.run(path, r.version, r.record);
    });
    onProgress?.(Math.min(i + MIGRATION_BATCH, paths.length), paths.length);
  }
  const policies = await convert.policies(
    (q(
      "SELECT name, spiffe_id_pattern, path_pattern, permissions, created_time, updated_time FROM schema1_policies ORDER BY name",
    ).all() as Row[]).map((r) => ({
      name: r.name as string,
      spiffeIdPattern: bytes(r.spiffe_id_pattern),
      pathPattern: bytes(r.path_pattern),
      permissions: bytes(r.permissions),
      createdAt: bytes(r.created_time),
      updatedAt: bytes(r.updated_time),
    })),
  );
  if (policies) {
    q("INSERT INTO policy_set (id, generation, record) VALUES (1, ?, ?)").run(
      policies.set.generation,
      policies.set.record,
    );
    const insertPolicy = q("INSERT INTO policies (name, record) VALUES (?, ?)");
    for (const p of policies.rows) insertPolicy.run(p.name, p.record);
  }
  // Format 2 without its integrity row: the unlock that follows anchors it.
  q("UPDATE meta SET keyring = ?, schema_version = ? WHERE id = 1").run(
    await convert.keyring(),
    FORMAT2_SCHEMA_VERSION,
  );
  db.exec(`
    DROP TABLE schema1_secret_versions;
    DROP TABLE schema1_secrets;
    DROP TABLE schema1_policies;`);
}

// Turns on WAL. On a read-only volume the file keeps the journal mode it
// has: reads go on and writes fail with store_write_failed.
// Returns whether the file is in WAL mode.
function enableWal(db: DatabaseSync, file: string): boolean {
  let mode: unknown;
  try {
    mode = (db.prepare("PRAGMA journal_mode = WAL").get() as Row).journal_mode;
  } catch (e) {
    if (/readonly database/.test((e as Error).message)) return false;
    throw e;
  }
  if (mode !== "wal") {
    throw new StoreError(
      `The database file ${file} cannot use WAL journaling on this file system`,
    );
  }
  return true;
}

// Creates the schema in an empty file, or checks the version of an
// existing one: the current schema, or schema 1, which the store migrates
// on its first unlock.
function createOrCheckSchema(db: DatabaseSync, file: string): number {
  const tables = (db.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'table'",
  ).all() as Row[]).map((r) => r.name);
  if (tables.length === 0) {
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(SCHEMA);
      db.exec("COMMIT");
    } catch (e) {
      db.exec("ROLLBACK");
      throw e;
    }
    return SCHEMA_VERSION;
  }
  if (!tables.includes("meta")) {
    throw new StoreError(`The database file ${file} is not a SPIKE store`);
  }
  const row = db.prepare("SELECT schema_version FROM meta WHERE id = 1")
    .get() as Row | undefined;
  const version = row?.schema_version;
  if (typeof version !== "number") {
    throw new StoreError(
      `The database file ${file} has no schema version: it is not a SPIKE store`,
    );
  }
  if (version > SCHEMA_VERSION) {
    throw new StoreError(
      `The database file ${file} has schema version ${version}, newer than this build supports (${SCHEMA_VERSION}): run a newer SPIKE`,
    );
  }
  if (
    version !== SCHEMA_VERSION && version !== FORMAT2_SCHEMA_VERSION &&
    version !== 1
  ) {
    throw new StoreError(
      `The database file ${file} has unknown schema version ${version}`,
    );
  }
  if (version === 1 && isEmptySchema1(db)) {
    // Created by the first release but never initialized (it stopped before
    // its keepers took the shards): nothing to migrate, start it anew.
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(`
        DROP TABLE secret_versions; DROP TABLE secrets; DROP TABLE policies;
        DROP TABLE shard_commitments; DROP TABLE meta;
        ${SCHEMA}`);
      db.exec("COMMIT");
    } catch (e) {
      db.exec("ROLLBACK");
      throw e;
    }
    return SCHEMA_VERSION;
  }
  return version;
}

function isEmptySchema1(db: DatabaseSync): boolean {
  const row = db.prepare(
    `SELECT (SELECT store_id FROM meta WHERE id = 1) IS NULL
        AND NOT EXISTS (SELECT 1 FROM secrets)
        AND NOT EXISTS (SELECT 1 FROM policies)
        AND NOT EXISTS (SELECT 1 FROM shard_commitments) AS empty`,
  ).get() as Row;
  return row.empty === 1;
}
