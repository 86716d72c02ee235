// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * SQLite {@linkcode StoreBackend} on `node:sqlite`, file `<dataDir>/spike.db`.
 *
 * Durability: WAL journal with `synchronous=FULL`, so a write is on disk
 * (fsync of the WAL) before its promise resolves and survives kill -9 and
 * power loss. A clean close leaves the file in rollback-journal mode, so a
 * volume that comes back read-only still opens and serves reads.
 *
 * Group commit: writes queue up and drain together, one `BEGIN IMMEDIATE …
 * COMMIT` (one fsync) per batch, each write in its own savepoint so one
 * failing write does not undo the others. No write is acknowledged before
 * the batch commits; if the commit fails, every write of the batch fails
 * with `store_write_failed` and the database keeps its previous state.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { join } from "node:path";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import {
  assertStoreMeta,
  type PolicyRow,
  SCHEMA_VERSION,
  type SecretState,
  type SecretVersionMetaRow,
  type SecretVersionRow,
  type SecretWrite,
  type StoreBackend,
  StoreError,
  type StoreMeta,
  type WriteResult,
} from "./backend.ts";

/** The database file name inside the data directory. */
export const DB_FILE_NAME = "spike.db";

/** Most writes committed in one transaction. */
const MAX_BATCH = 512;

const SCHEMA = `
CREATE TABLE meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  schema_version INTEGER NOT NULL,
  store_id BLOB,
  key_check BLOB,
  threshold INTEGER,
  share_count INTEGER
);
CREATE TABLE shard_commitments (
  share_index INTEGER PRIMARY KEY CHECK (share_index >= 1),
  commitment BLOB NOT NULL
);
CREATE TABLE secrets (
  path TEXT PRIMARY KEY,
  revision INTEGER NOT NULL,
  created_time BLOB NOT NULL,
  updated_time BLOB NOT NULL,
  max_versions BLOB NOT NULL
);
CREATE TABLE secret_versions (
  path TEXT NOT NULL REFERENCES secrets(path),
  version INTEGER NOT NULL CHECK (version >= 1),
  deleted INTEGER NOT NULL CHECK (deleted IN (0, 1)),
  data BLOB NOT NULL,
  created_time BLOB NOT NULL,
  deleted_time BLOB NOT NULL,
  PRIMARY KEY (path, version)
);
CREATE TABLE policies (
  name TEXT PRIMARY KEY,
  spiffe_id_pattern BLOB NOT NULL,
  path_pattern BLOB NOT NULL,
  permissions BLOB NOT NULL,
  created_time BLOB NOT NULL,
  updated_time BLOB NOT NULL
);
INSERT INTO meta (id, schema_version) VALUES (1, ${SCHEMA_VERSION});
`;

/** Options of {@linkcode SqliteBackend.open}. */
export interface SqliteOptions {
  /** SQLite busy timeout in ms (another process holding the write lock). */
  readonly busyTimeoutMs?: number;
}

type Row = Record<string, unknown>;

interface Job {
  run(): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

const bytes = (v: unknown) => v as Uint8Array<ArrayBuffer>;

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
  #stmt: Record<string, StatementSync>;
  #queue: Job[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  private constructor(file: string, db: DatabaseSync) {
    this.location = file;
    this.#db = db;
    const q = (sql: string) => db.prepare(sql);
    this.#stmt = {
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
      head: q(
        "SELECT revision, created_time, updated_time, max_versions FROM secrets WHERE path = ?",
      ),
      versions: q(
        "SELECT version, deleted, created_time, deleted_time FROM secret_versions WHERE path = ? ORDER BY version",
      ),
      version: q(
        "SELECT version, deleted, data, created_time, deleted_time FROM secret_versions WHERE path = ? AND version = ?",
      ),
      current: q(
        "SELECT version, deleted, data, created_time, deleted_time FROM secret_versions WHERE path = ? AND deleted = 0 ORDER BY version DESC LIMIT 1",
      ),
      versionExists: q(
        "SELECT 1 AS found FROM secret_versions WHERE path = ? AND version = ?",
      ),
      insertHead: q(
        "INSERT INTO secrets (path, revision, created_time, updated_time, max_versions) VALUES (?, ?, ?, ?, ?)",
      ),
      updateHead: q(
        "UPDATE secrets SET revision = ?, created_time = ?, updated_time = ?, max_versions = ? WHERE path = ?",
      ),
      insertVersion: q(
        "INSERT INTO secret_versions (path, version, deleted, data, created_time, deleted_time) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      setDeleted: q(
        "UPDATE secret_versions SET deleted = ?, deleted_time = ? WHERE path = ? AND version = ?",
      ),
      prune: q(
        "DELETE FROM secret_versions WHERE path = ? AND version NOT IN (SELECT version FROM secret_versions WHERE path = ? ORDER BY version DESC LIMIT ?)",
      ),
      paths: q("SELECT path FROM secrets ORDER BY path"),
      upsertPolicy: q(
        `INSERT INTO policies (name, spiffe_id_pattern, path_pattern, permissions, created_time, updated_time)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET
           spiffe_id_pattern = excluded.spiffe_id_pattern,
           path_pattern = excluded.path_pattern,
           permissions = excluded.permissions,
           updated_time = excluded.updated_time
         RETURNING created_time`,
      ),
      policy: q(
        "SELECT name, spiffe_id_pattern, path_pattern, permissions, created_time, updated_time FROM policies WHERE name = ?",
      ),
      deletePolicy: q("DELETE FROM policies WHERE name = ?"),
      policies: q(
        "SELECT name, spiffe_id_pattern, path_pattern, permissions, created_time, updated_time FROM policies ORDER BY name",
      ),
    };
  }

  /**
   * Opens (creating if needed) `<dataDir>/spike.db`. The directory must
   * already exist with mode 0700 (see `data_dir.ts`); the file and its WAL
   * and shared-memory files get mode 0600.
   *
   * @param dataDir the data directory
   * @param options SQLite settings
   * @returns the backend
   * @throws {StoreError} when the file is not a SPIKE store, has a newer
   * schema, or cannot be opened
   */
  static open(dataDir: string, options: SqliteOptions = {}): SqliteBackend {
    const file = join(dataDir, DB_FILE_NAME);
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
      enableWal(db, file);
      db.exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;");
      migrate(db, file);
      chmodIfPresent(`${file}-wal`, 0o600);
      chmodIfPresent(`${file}-shm`, 0o600);
      return new SqliteBackend(file, db);
    } catch (e) {
      db.close();
      if (e instanceof StoreError) throw e;
      throw new StoreError(`Cannot open the database file ${file}`, {
        cause: e,
      });
    }
  }

  // Reads run synchronously between write batches, so they see only
  // committed data.
  #read<T>(fn: () => T): Promise<T> {
    try {
      if (this.#closed) throw new StoreError("Store is closed");
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

  #write<T>(run: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreError("Store is closed"));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        run,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
      this.#timer ??= setTimeout(() => this.#drain(), 0);
    });
  }

  #drain(): void {
    this.#timer = undefined;
    const batch = this.#queue.splice(0, MAX_BATCH);
    if (this.#queue.length > 0) {
      this.#timer = setTimeout(() => this.#drain(), 0);
    }
    if (batch.length === 0) return;
    const db = this.#db;
    try {
      db.exec("BEGIN IMMEDIATE");
    } catch (e) {
      for (const job of batch) job.reject(writeFailed(e));
      return;
    }
    const outcomes:
      ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    for (const job of batch) {
      try {
        db.exec("SAVEPOINT job");
        const value = job.run();
        db.exec("RELEASE job");
        outcomes.push({ ok: true, value });
      } catch (e) {
        if (!db.isTransaction) {
          // SQLite rolled the whole transaction back (disk full, I/O
          // error): nothing of this batch is stored.
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
      db.exec("COMMIT");
    } catch (e) {
      this.#abort(batch, e);
      return;
    }
    batch.forEach((job, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) job.resolve(outcome.value);
      else job.reject(outcome.error);
    });
  }

  #abort(batch: Job[], error: unknown): void {
    try {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
    } catch {
      // The transaction is gone either way; the jobs fail below.
    }
    for (const job of batch) job.reject(writeFailed(error));
  }

  /** See {@linkcode StoreBackend.readMeta}. */
  readMeta(): Promise<StoreMeta | undefined> {
    return this.#read(() => {
      const row = this.#stmt.meta!.get() as Row;
      if (row.store_id === null) return undefined;
      const commitments = (this.#stmt.commitments!.all() as Row[]).map((r) =>
        bytes(r.commitment)
      );
      return {
        storeId: bytes(row.store_id),
        keyCheck: bytes(row.key_check),
        threshold: row.threshold as number,
        shareCount: row.share_count as number,
        commitments,
      };
    });
  }

  /** See {@linkcode StoreBackend.initMeta}. */
  initMeta(meta: StoreMeta): Promise<void> {
    try {
      assertStoreMeta(meta);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#write(() => {
      const result = this.#stmt.initMeta!.run(
        meta.storeId,
        meta.keyCheck,
        meta.threshold,
        meta.shareCount,
      );
      if (result.changes === 0) {
        throw new StoreError("Store meta is already initialized");
      }
      meta.commitments.forEach((c, i) =>
        this.#stmt.addCommitment!.run(i + 1, c)
      );
    });
  }

  /** See {@linkcode StoreBackend.readSecret}. */
  readSecret(path: string): Promise<SecretState | undefined> {
    return this.#read(() => {
      const head = this.#stmt.head!.get(path) as Row | undefined;
      if (!head) return undefined;
      const versions = (this.#stmt.versions!.all(path) as Row[]).map((
        r,
      ): SecretVersionMetaRow => ({
        version: r.version as number,
        deleted: r.deleted === 1,
        createdTime: bytes(r.created_time),
        deletedTime: bytes(r.deleted_time),
      }));
      return {
        head: {
          revision: head.revision as number,
          createdTime: bytes(head.created_time),
          updatedTime: bytes(head.updated_time),
          maxVersions: bytes(head.max_versions),
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
    return this.#read(() => {
      const r = (version === 0
        ? this.#stmt.current!.get(path)
        : this.#stmt.version!.get(path, version)) as Row | undefined;
      if (!r) {
        return undefined;
      }
      return {
        version: r.version as number,
        deleted: r.deleted === 1,
        data: bytes(r.data),
        createdTime: bytes(r.created_time),
        deletedTime: bytes(r.deleted_time),
      };
    });
  }

  /** See {@linkcode StoreBackend.writeSecret}. */
  writeSecret(
    path: string,
    expectedRevision: number,
    change: SecretWrite,
  ): Promise<WriteResult> {
    return this.#write((): WriteResult => {
      const s = this.#stmt;
      const head = s.head!.get(path) as Row | undefined;
      if (((head?.revision as number | undefined) ?? 0) !== expectedRevision) {
        return { ok: false, conflict: true };
      }
      // Check before changing anything: a conflict is a result, not an
      // error, so the savepoint would not undo partial changes.
      const exists = (v: number) => s.versionExists!.get(path, v) !== undefined;
      if (change.insert && exists(change.insert.version)) {
        return { ok: false, conflict: true };
      }
      for (const d of change.deletions ?? []) {
        if (!exists(d.version)) return { ok: false, conflict: true };
      }
      const revision = expectedRevision + 1;
      const h = change.head;
      if (head) {
        s.updateHead!.run(
          revision,
          h.createdTime,
          h.updatedTime,
          h.maxVersions,
          path,
        );
      } else {
        s.insertHead!.run(
          path,
          revision,
          h.createdTime,
          h.updatedTime,
          h.maxVersions,
        );
      }
      const v = change.insert;
      if (v) {
        s.insertVersion!.run(
          path,
          v.version,
          v.deleted ? 1 : 0,
          v.data,
          v.createdTime,
          v.deletedTime,
        );
      }
      for (const d of change.deletions ?? []) {
        s.setDeleted!.run(d.deleted ? 1 : 0, d.deletedTime, path, d.version);
      }
      if (change.keepVersions !== undefined) {
        s.prune!.run(path, path, change.keepVersions);
      }
      return { ok: true, revision };
    });
  }

  /** See {@linkcode StoreBackend.listSecretPaths}. */
  listSecretPaths(): Promise<string[]> {
    return this.#read(() =>
      (this.#stmt.paths!.all() as Row[]).map((r) => r.path as string)
    );
  }

  /** See {@linkcode StoreBackend.upsertPolicy}. */
  upsertPolicy(row: PolicyRow): Promise<PolicyRow> {
    return this.#write(() => {
      const stored = this.#stmt.upsertPolicy!.get(
        row.name,
        row.spiffeIdPattern,
        row.pathPattern,
        row.permissions,
        row.createdAt,
        row.updatedAt,
      ) as Row;
      return { ...row, createdAt: bytes(stored.created_time) };
    });
  }

  /** See {@linkcode StoreBackend.readPolicy}. */
  readPolicy(name: string): Promise<PolicyRow | undefined> {
    return this.#read(() => {
      const r = this.#stmt.policy!.get(name) as Row | undefined;
      return r && policyRow(r);
    });
  }

  /** See {@linkcode StoreBackend.deletePolicy}. */
  deletePolicy(name: string): Promise<boolean> {
    return this.#write(() => this.#stmt.deletePolicy!.run(name).changes > 0);
  }

  /** See {@linkcode StoreBackend.listPolicies}. */
  listPolicies(): Promise<PolicyRow[]> {
    return this.#read(() =>
      (this.#stmt.policies!.all() as Row[]).map(policyRow)
    );
  }

  /** Commits queued writes, then closes the database. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#queue.length > 0) this.#drain();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#closed = true;
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
    return Promise.resolve();
  }
}

// Turns on WAL. On a read-only volume the file keeps the journal mode it
// has: reads go on and writes fail with store_write_failed.
function enableWal(db: DatabaseSync, file: string): void {
  let mode: unknown;
  try {
    mode = (db.prepare("PRAGMA journal_mode = WAL").get() as Row).journal_mode;
  } catch (e) {
    if (/readonly database/.test((e as Error).message)) return;
    throw e;
  }
  if (mode !== "wal") {
    throw new StoreError(
      `The database file ${file} cannot use WAL journaling on this file system`,
    );
  }
}

function policyRow(r: Row): PolicyRow {
  return {
    name: r.name as string,
    spiffeIdPattern: bytes(r.spiffe_id_pattern),
    pathPattern: bytes(r.path_pattern),
    permissions: bytes(r.permissions),
    createdAt: bytes(r.created_time),
    updatedAt: bytes(r.updated_time),
  };
}

// Creates the schema in an empty file or checks the version of an existing
// one. Older versions would be upgraded here once a second version exists.
function migrate(db: DatabaseSync, file: string): void {
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
    return;
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
  if (version < SCHEMA_VERSION) {
    throw new StoreError(
      `The database file ${file} has unknown schema version ${version}`,
    );
  }
}
