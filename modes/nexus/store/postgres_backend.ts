// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * PostgreSQL {@linkcode StoreBackend}: the store that several nexus
 * replicas share. Every replica reads and writes the primary (never a read
 * replica), so reads are linearizable: each read is one statement (one
 * snapshot) and each write one function call (one transaction) that
 * commits before it is acknowledged. With `synchronous_commit` and a
 * synchronous standby on the server, an acknowledged write survives the
 * loss of the primary too.
 *
 * Values stay sealed in nexus: the database sees sealed records, plaintext
 * lookup columns (paths, names, version numbers, revisions) and the store
 * meta, never a value, a key or a shard.
 *
 * Failures: a replica that cannot reach the database answers 503
 * (`state_not_ready`) and goes on by itself once it can; a write whose
 * connection broke before its outcome was known is settled through its
 * write id (`postgres_schema.ts`): reported as done if it committed,
 * otherwise fenced out for good and reported as a conflict, which the
 * services retry, so a retry never stores a version twice. When that
 * cannot be known (the database stays out of reach, or the fence rows of
 * the write's epoch were pruned meanwhile), the write fails with
 * `api_internal_error` rather than be retried blindly.
 *
 * @module
 */
import postgres from "postgres";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import {
  assertStoreMeta,
  type AuditAnchorRow,
  type IntegrityRow,
  type IntegritySnapshot,
  type KeyRange,
  type PendingRootKey,
  type PendingWrite,
  type PolicyChange,
  type PolicyRead,
  type PolicySetRow,
  type PolicySnapshot,
  prefixEnd,
  type RestoreCheck,
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
import {
  DatabaseSetupError,
  describeDatabaseError,
  isConnectionError,
  openPool,
  type PoolSettings,
  type Sql,
} from "./postgres_connect.ts";
import { ConfigError } from "../../../lib/config/env.ts";
import {
  CONFLICT_STATE,
  migrate,
  STALE_EPOCH_STATE,
  VERSION_EXISTS_STATE,
} from "./postgres_schema.ts";

type Row = Record<string, unknown>;

/** A store a creator left half-made: its id and share commitments. */
export type AbandonedStore = Pick<StoreMeta, "storeId" | "commitments">;

/** How long a write whose outcome is unknown is retried to settle it. */
const SETTLE_MS = 30_000;
/**
 * How many times a write whose fence epoch is stale (its replica wrote
 * nothing during two prunes) is sent again with the current one.
 */
const STALE_EPOCH_RETRIES = 3;

/** Paths read per statement by a snapshot. */
const SNAPSHOT_PAGE = 256;

// postgres.js hands out bytea as Buffers that may share memory: copy into
// a plain Uint8Array of its own.
function bytes(value: unknown): Uint8Array<ArrayBuffer> {
  return new Uint8Array(value as Uint8Array);
}

function unreachable(error: unknown, settings: PoolSettings): ApiError {
  return new ApiError(
    ErrorCode.NotReady,
    `The database is unreachable: ${
      describeDatabaseError(error, settings.database)
    }`,
    { cause: error },
  );
}

// The server's or the driver's text; it names tables, columns and
// functions, never a bound value.
function reason(error: unknown): string {
  return error instanceof Error ? error.message : "unknown error";
}

function sqlState(error: unknown): string | undefined {
  return error instanceof postgres.PostgresError ? error.code : undefined;
}

async function fenceEpoch(sql: Sql): Promise<number> {
  const [row] = await sql`SELECT fence_epoch FROM spike_meta WHERE id = 1`;
  return Number(row!.fence_epoch);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function readPending(sql: Sql): Promise<PendingRootKey | undefined> {
  const [row] = await sql`
    SELECT key_check, threshold, share_count, commitments
    FROM spike_pending_root_key WHERE id = 1`;
  if (!row) return undefined;
  return {
    keyCheck: bytes(row.key_check),
    threshold: Number(row.threshold),
    shareCount: Number(row.share_count),
    commitments: fromHexList(row.commitments),
  };
}

// Commitments as one text column: comma-separated hex, share order.
function hexList(values: readonly Uint8Array[]): string {
  return values.map((v) => v.toHex()).join(",");
}

function fromHexList(value: unknown): Uint8Array<ArrayBuffer>[] {
  return typeof value === "string" && value !== ""
    ? value.split(",").map((hex) => Uint8Array.fromHex(hex))
    : [];
}

// A page of paths after `after` with every version row, in one statement.
function recordsQuery(sql: Sql, after: string, limit: number | null) {
  return sql`
    SELECT s.path, s.revision, s.head, v.version, v.record
    FROM (SELECT path, revision, head FROM spike_secrets
          WHERE path > ${after} ORDER BY path LIMIT ${limit}) s
    LEFT JOIN spike_secret_versions v ON v.path = s.path
    ORDER BY s.path, v.version`;
}

// Rows of a path joined with its version rows, one record set per path.
function groupRecords(rows: readonly Row[]): SecretRecords[] {
  const out: SecretRecords[] = [];
  let current: SecretRecords | undefined;
  let versions: { version: number; record: Sealed }[] = [];
  for (const r of rows) {
    if (current?.path !== r.path) {
      versions = [];
      current = {
        path: r.path as string,
        revision: Number(r.revision),
        head: bytes(r.head),
        versions,
      };
      out.push(current);
    }
    if (r.version !== null) {
      versions.push({ version: Number(r.version), record: bytes(r.record) });
    }
  }
  return out;
}

/** The PostgreSQL backend. Create with {@linkcode PostgresBackend.open}. */
export class PostgresBackend implements StoreBackend {
  /** Always `postgres`. */
  readonly kind = "postgres";
  /** `postgres://user@host:port/database` (no password). */
  readonly location: string;
  /** Always undefined: PostgreSQL stores start in format 2. */
  readonly schema1 = undefined;
  /** The pool, for the replica coordination (`ha/`). */
  readonly sql: Sql;
  /** The settings the pool was opened with. */
  readonly settings: PoolSettings;
  #closed = false;
  // Told after each write, so a checkpoint folds it soon.
  #ledger: WriteLedger | undefined;
  readonly #running = new Set<Promise<unknown>>();
  // The write fence epoch as of this replica's last write (see
  // postgres_schema.ts); every write returns the current one.
  #epoch: number;

  private constructor(
    sql: Sql,
    settings: PoolSettings,
    location: string,
    epoch: number,
  ) {
    this.sql = sql;
    this.settings = settings;
    this.location = location;
    this.#epoch = epoch;
  }

  /**
   * Connects, and creates or migrates the schema.
   *
   * @param settings connection and pool settings
   * @returns the backend
   * @throws {ConfigError} when a setting is wrong: the server certificate
   * does not verify (CA, host name), a TLS file cannot be read, or the
   * server refuses the login
   * @throws {StoreError} when the database cannot be reached or holds a
   * schema this build cannot use
   */
  static async open(settings: PoolSettings): Promise<PostgresBackend> {
    const db = settings.database;
    const location =
      `postgres://${db.user}@${db.host}:${db.port}/${db.database}`;
    const sql = openPool(settings);
    try {
      await migrate(sql, location);
      return new PostgresBackend(
        sql,
        settings,
        location,
        await fenceEpoch(sql),
      );
    } catch (e) {
      await sql.end({ timeout: 0 }).catch(() => {});
      if (e instanceof StoreError) throw e;
      const why = `Cannot open the database ${location}: ${
        describeDatabaseError(e, db)
      }`;
      // Trying again would not help: nexus stops (exit 2).
      if (e instanceof DatabaseSetupError || /^28/.test(sqlState(e) ?? "")) {
        throw new ConfigError(why);
      }
      throw new StoreError(why, { cause: e });
    }
  }

  // Keeps `work` among the running operations until it settles, so that
  // close() waits for exactly those.
  #track<T>(work: Promise<T>): Promise<T> {
    this.#running.add(work);
    const done = () => this.#running.delete(work);
    work.then(done, done);
    return work;
  }

  #query<T>(run: () => Promise<T>): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new StoreError("Store is closed"));
    }
    return this.#track(this.#queryNow(run));
  }

  async #queryNow<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      if (e instanceof StoreError || e instanceof ApiError) throw e;
      if (isConnectionError(e) || sqlState(e) === "57014") {
        throw unreachable(e, this.settings);
      }
      throw new ApiError(
        ErrorCode.Internal,
        `Store read failed: ${reason(e)}`,
        { cause: e },
      );
    }
  }

  async #metaRow(state: "ready" | "pending"): Promise<StoreMeta | undefined> {
    return await this.#query(async () => {
      const rows = await this.sql`
        SELECT m.schema_version, m.store_id, m.key_check, m.threshold,
               m.share_count,
               string_agg(encode(c.commitment, 'hex'), ',' ORDER BY
                 c.share_index) AS commitments
        FROM spike_meta m LEFT JOIN spike_shard_commitments c ON true
        WHERE m.id = 1 AND m.state = ${state}
        GROUP BY m.id`;
      const row = rows[0] as Row | undefined;
      if (!row) return undefined;
      return {
        storeId: bytes(row.store_id),
        keyCheck: bytes(row.key_check),
        threshold: Number(row.threshold),
        shareCount: Number(row.share_count),
        commitments: row.commitments === null
          ? []
          : (row.commitments as string).split(",").map((hex) =>
            Uint8Array.fromHex(hex)
          ),
        schemaVersion: Number(row.schema_version),
      };
    });
  }

  /**
   * See {@linkcode StoreBackend.readMeta}: a ready store only, with a
   * rekey's pending root key when one waits.
   */
  async readMeta(): Promise<StoreMeta | undefined> {
    const meta = await this.#metaRow("ready");
    if (!meta) return undefined;
    const pending = await this.#query(() => readPending(this.sql));
    return pending ? { ...meta, pending } : meta;
  }

  /** See {@linkcode StoreBackend.initMeta}: writes a ready store at once. */
  initMeta(meta: StoreMeta): Promise<void> {
    return this.#writeMeta(meta, "ready");
  }

  /**
   * Writes the meta of a store being created, as pending: no replica reads
   * it as a store until {@linkcode confirmPendingMeta}.
   *
   * @param meta the new store's meta
   * @throws {StoreError} when the store is not empty
   */
  initPendingMeta(meta: StoreMeta): Promise<void> {
    return this.#writeMeta(meta, "pending");
  }

  /** The meta of a store being created, if one is pending. */
  readPendingMeta(): Promise<StoreMeta | undefined> {
    return this.#metaRow("pending");
  }

  /**
   * Turns the pending store with this id into the store.
   *
   * @param storeId the pending store's id
   * @throws {StoreError} when no such store is pending
   */
  async confirmPendingMeta(storeId: Uint8Array): Promise<void> {
    await this.#query(() =>
      this.sql.begin(async (tx) => {
        const rows = await tx`
          UPDATE spike_meta SET state = 'ready', changed_at = now()
          WHERE id = 1 AND state = 'pending' AND store_id = ${storeId}
          RETURNING 1`;
        if (rows.length === 0) {
          throw new StoreError("No store with this id is pending");
        }
        await tx`DELETE FROM spike_abandoned_shards`;
      })
    );
  }

  /**
   * Drops the pending store with this id (its creator died before enough
   * keepers held its shards), leaving the store empty, and remembers its
   * commitments among the abandoned stores.
   *
   * @param storeId the pending store's id
   */
  async discardPendingMeta(storeId: Uint8Array): Promise<void> {
    await this.#query(() =>
      this.sql.begin(async (tx) => {
        const rows = await tx`
          UPDATE spike_meta SET state = 'empty', store_id = NULL,
            key_check = NULL, threshold = NULL, share_count = NULL,
            changed_at = now()
          WHERE id = 1 AND state = 'pending' AND store_id = ${storeId}
          RETURNING 1`;
        if (rows.length === 0) return;
        await tx`
          INSERT INTO spike_abandoned_shards (store_id, share_index, commitment)
          SELECT ${storeId}, share_index, commitment
          FROM spike_shard_commitments`;
        await tx`DELETE FROM spike_shard_commitments`;
      })
    );
  }

  /**
   * The stores that creators left half-made and that were discarded since
   * the store became empty: a keeper holding one of their shards holds
   * nothing that matters.
   *
   * @returns each store's id and share commitments
   */
  readAbandoned(): Promise<AbandonedStore[]> {
    return this.#query(async () => {
      const rows = await this.sql`
        SELECT store_id, share_index, commitment FROM spike_abandoned_shards
        ORDER BY store_id, share_index`;
      const stores = new Map<string, AbandonedStore>();
      for (const r of rows) {
        const id = bytes(r.store_id);
        const store = stores.get(id.toHex()) ??
          { storeId: id, commitments: [] };
        stores.set(id.toHex(), {
          ...store,
          commitments: [...store.commitments, bytes(r.commitment)],
        });
      }
      return [...stores.values()];
    });
  }

  async #writeMeta(meta: StoreMeta, state: "ready" | "pending") {
    assertStoreMeta(meta);
    await this.#query(() =>
      this.sql.begin(async (tx) => {
        const rows = await tx`
          UPDATE spike_meta SET state = ${state}, store_id = ${meta.storeId},
            key_check = ${meta.keyCheck}, threshold = ${meta.threshold},
            share_count = ${meta.shareCount}, changed_at = now()
          WHERE id = 1 AND state = 'empty'
          RETURNING 1`;
        if (rows.length === 0) {
          throw new StoreError("Store meta is already initialized");
        }
        for (const [i, c] of meta.commitments.entries()) {
          await tx`
            INSERT INTO spike_shard_commitments (share_index, commitment)
            VALUES (${i + 1}, ${c})`;
        }
      })
    );
  }

  /** See {@linkcode StoreBackend.readKeyring}. */
  readKeyring(): Promise<Sealed | undefined> {
    return this.#query(async () => {
      const [row] = await this.sql`
        SELECT keyring FROM spike_meta WHERE id = 1 AND state = 'ready'`;
      const keyring = row?.keyring ?? null;
      return keyring === null ? undefined : bytes(keyring);
    });
  }

  /** See {@linkcode StoreBackend.initKeyring}. */
  initKeyring(keyring: Sealed): Promise<Sealed> {
    return this.#query(async () => {
      // Two statements: the second sees what a concurrent first replica
      // committed while this one waited for the row.
      await this.sql`
        UPDATE spike_meta SET keyring = ${keyring}
        WHERE id = 1 AND state = 'ready' AND keyring IS NULL`;
      const [row] = await this.sql`
        SELECT keyring FROM spike_meta WHERE id = 1 AND state = 'ready'`;
      const stored = row?.keyring ?? null;
      if (stored === null) throw new StoreError("The store has no meta yet");
      return bytes(stored);
    });
  }

  /** See {@linkcode StoreBackend.writeKeyring}. */
  writeKeyring(expected: Sealed, keyring: Sealed): Promise<boolean> {
    return this.#query(async () => {
      const rows = await this.sql`
        UPDATE spike_meta SET keyring = ${keyring}
        WHERE id = 1 AND state = 'ready' AND keyring = ${expected}
        RETURNING 1`;
      return rows.length === 1;
    });
  }

  /** See {@linkcode StoreBackend.writePendingRootKey}. */
  writePendingRootKey(
    currentKeyCheck: Uint8Array<ArrayBuffer>,
    pending: PendingRootKey,
    keyring: Sealed,
  ): Promise<boolean> {
    return this.#query(() =>
      this.sql.begin(async (tx) => {
        const [meta] = await tx`
          SELECT store_id, key_check, threshold, share_count FROM spike_meta
          WHERE id = 1 AND state = 'ready' FOR UPDATE`;
        if (!meta || !sameBytes(bytes(meta.key_check), currentKeyCheck)) {
          return false;
        }
        assertStoreMeta({
          storeId: bytes(meta.store_id),
          keyCheck: pending.keyCheck,
          threshold: pending.threshold,
          shareCount: pending.shareCount,
          commitments: pending.commitments,
        });
        await tx`
          INSERT INTO spike_pending_root_key
            (id, key_check, threshold, share_count, commitments, keyring)
          VALUES (1, ${pending.keyCheck}, ${pending.threshold},
            ${pending.shareCount}, ${hexList(pending.commitments)},
            ${keyring})
          ON CONFLICT (id) DO UPDATE SET key_check = excluded.key_check,
            threshold = excluded.threshold,
            share_count = excluded.share_count,
            commitments = excluded.commitments, keyring = excluded.keyring`;
        return true;
      })
    );
  }

  /** See {@linkcode StoreBackend.commitPendingRootKey}. */
  commitPendingRootKey(
    pendingKeyCheck: Uint8Array<ArrayBuffer>,
    expectedKeyring?: Sealed,
  ): Promise<boolean> {
    return this.#query(() =>
      this.sql.begin(async (tx) => {
        const [live] = await tx`
          SELECT keyring FROM spike_meta
          WHERE id = 1 AND state = 'ready' FOR UPDATE`;
        const [row] = await tx`
          SELECT key_check, threshold, share_count, commitments, keyring
          FROM spike_pending_root_key WHERE id = 1 FOR UPDATE`;
        if (!row || !sameBytes(bytes(row.key_check), pendingKeyCheck)) {
          return false;
        }
        if (
          expectedKeyring &&
          !(live?.keyring && sameBytes(bytes(live.keyring), expectedKeyring))
        ) {
          return false;
        }
        await tx`
          UPDATE spike_meta SET key_check = ${bytes(row.key_check)},
            threshold = ${Number(row.threshold)},
            share_count = ${Number(row.share_count)},
            keyring = ${bytes(row.keyring)}, changed_at = now()
          WHERE id = 1 AND state = 'ready'`;
        await tx`DELETE FROM spike_shard_commitments`;
        for (const [i, c] of fromHexList(row.commitments).entries()) {
          await tx`
            INSERT INTO spike_shard_commitments (share_index, commitment)
            VALUES (${i + 1}, ${c})`;
        }
        await tx`DELETE FROM spike_pending_root_key`;
        return true;
      })
    );
  }

  /** See {@linkcode StoreBackend.clearPendingRootKey}. */
  async clearPendingRootKey(): Promise<void> {
    await this.#query(() => this.sql`DELETE FROM spike_pending_root_key`);
  }

  /**
   * See {@linkcode StoreBackend.openSnapshot}: one READ ONLY, REPEATABLE
   * READ transaction on a reserved connection, held while the rows are
   * read (its idle limit raised, since the reader sets the pace).
   */
  async openSnapshot(): Promise<StoreSnapshot> {
    if (this.#closed) throw new StoreError("Store is closed");
    const conn = await this.#query(() => this.sql.reserve());
    let open = false;
    // Among the running operations while open: close() waits for it.
    let ended = () => {};
    const end = async () => {
      if (!open) return;
      open = false;
      try {
        await conn`COMMIT`;
      } finally {
        conn.release();
        ended();
      }
    };
    try {
      await conn`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`;
      open = true;
      this.#track(new Promise<void>((r) => ended = r));
      await conn.unsafe(
        "SET LOCAL idle_in_transaction_session_timeout = '10min'",
      );
      const [row] = await conn`
        SELECT m.schema_version, m.store_id, m.key_check, m.threshold,
               m.share_count, m.keyring,
               (SELECT string_agg(encode(commitment, 'hex'), ','
                         ORDER BY share_index)
                FROM spike_shard_commitments) AS commitments
        FROM spike_meta m WHERE m.id = 1 AND m.state = 'ready'`;
      if (!row || row.keyring === null) {
        throw new StoreError("The store has no meta or keyring yet");
      }
      const meta: StoreMeta = {
        storeId: bytes(row.store_id),
        keyCheck: bytes(row.key_check),
        threshold: Number(row.threshold),
        shareCount: Number(row.share_count),
        commitments: fromHexList(row.commitments),
        schemaVersion: Number(row.schema_version),
      };
      const keyring = bytes(row.keyring);
      return {
        meta,
        keyring,
        async *rows(): AsyncIterable<SnapshotRow> {
          let after = "";
          for (;;) {
            if (!open) throw new StoreError("The snapshot is closed");
            const page = groupRecords(
              await recordsQuery(conn, after, SNAPSHOT_PAGE),
            );
            for (const records of page) yield { kind: "secret", records };
            if (page.length < SNAPSHOT_PAGE) break;
            after = page[page.length - 1]!.path;
          }
          const [set] = await conn`
            SELECT generation, record FROM spike_policy_set WHERE id = 1`;
          if (set) {
            yield {
              kind: "policySet",
              set: {
                generation: Number(set.generation),
                record: bytes(set.record),
              },
            };
          }
          const policies = await conn`
            SELECT name, record FROM spike_policies ORDER BY name`;
          for (const p of policies) {
            yield {
              kind: "policy",
              name: p.name as string,
              record: bytes(p.record),
            };
          }
        },
        [Symbol.asyncDispose]: end,
      };
    } catch (e) {
      if (open) await end().catch(() => {});
      else conn.release();
      if (e instanceof StoreError) throw e;
      throw new ApiError(
        ErrorCode.Internal,
        `Store snapshot failed: ${reason(e)}`,
        { cause: e },
      );
    }
  }

  /**
   * See {@linkcode StoreBackend.importStore}: into an empty schema, one
   * transaction on a reserved connection (its idle limit raised: the rows
   * come from a file at the reader's pace).
   */
  async importStore(store: StoreImport): Promise<void> {
    assertStoreMeta(store.meta);
    await this.#query(() =>
      this.sql.begin(async (tx) => {
        await tx.unsafe(
          "SET LOCAL idle_in_transaction_session_timeout = '10min'",
        );
        const meta = store.meta;
        const taken = await tx`
          UPDATE spike_meta SET state = 'ready', store_id = ${meta.storeId},
            key_check = ${meta.keyCheck}, threshold = ${meta.threshold},
            share_count = ${meta.shareCount}, keyring = ${store.keyring},
            changed_at = now()
          WHERE id = 1 AND state = 'empty' RETURNING 1`;
        if (taken.length === 0) throw new StoreError("The store is not empty");
        for (const [i, c] of meta.commitments.entries()) {
          await tx`
            INSERT INTO spike_shard_commitments (share_index, commitment)
            VALUES (${i + 1}, ${c})`;
        }
        for await (const row of store.rows) {
          if (row.kind === "secret") {
            const r = row.records;
            await tx`
              INSERT INTO spike_secrets (path, revision, head)
              VALUES (${r.path}, ${r.revision}, ${r.head})`;
            for (const v of r.versions) {
              await tx`
                INSERT INTO spike_secret_versions (path, version, record)
                VALUES (${r.path}, ${v.version}, ${v.record})`;
            }
          } else if (row.kind === "policy") {
            await tx`
              INSERT INTO spike_policies (name, record)
              VALUES (${row.name}, ${row.record})`;
          } else {
            await tx`
              INSERT INTO spike_policy_set (id, generation, record)
              VALUES (1, ${row.set.generation}, ${row.set.record})`;
          }
        }
        const check = await store.check();
        await tx`
          INSERT INTO spike_restore_check (id, digest, mac)
          VALUES (1, ${check.digest}, ${check.mac})`;
        // Not "to be anchored" (a migrated schema 2): a restored store is
        // held until an operator accepts it, also after a restart.
        await tx`DELETE FROM spike_integrity`;
      })
    );
  }

  /** See {@linkcode StoreBackend.readRestoreCheck}. */
  readRestoreCheck(): Promise<RestoreCheck | undefined> {
    return this.#query(async () => {
      const [row] = await this.sql`
        SELECT digest, mac FROM spike_restore_check WHERE id = 1`;
      return row && { digest: bytes(row.digest), mac: bytes(row.mac) };
    });
  }

  /** See {@linkcode StoreBackend.clearRestoreCheck}. */
  async clearRestoreCheck(): Promise<void> {
    await this.#query(() => this.sql`DELETE FROM spike_restore_check`);
  }

  /** See {@linkcode StoreBackend.readSecret}. */
  readSecret(path: string, version = 0): Promise<SecretRow | undefined> {
    return this.#query(async () => {
      const [r] = await this.sql`
        SELECT s.revision, s.head, v.n, v.lo, v.hi, r.record
        FROM spike_secrets s
        CROSS JOIN (SELECT count(*) AS n, min(version) AS lo,
                           max(version) AS hi
                    FROM spike_secret_versions WHERE path = ${path}) v
        LEFT JOIN spike_secret_versions r
          ON r.path = ${path} AND r.version = ${version}
        WHERE s.path = ${path}`;
      if (!r) return undefined;
      return {
        revision: Number(r.revision),
        head: bytes(r.head),
        versions: {
          count: Number(r.n),
          lowest: Number(r.lo ?? 0),
          highest: Number(r.hi ?? 0),
        },
        ...(r.record === null ? {} : { record: bytes(r.record) }),
      };
    });
  }

  /** See {@linkcode StoreBackend.writeSecret}. */
  writeSecret(
    path: string,
    expectedRevision: number,
    write: SecretWrite,
  ): Promise<WriteResult> {
    const v = write.insert;
    return this.#write(
      (id, epoch) =>
        this.sql`
          SELECT spike_write_secret(${id}, ${epoch}, ${path},
            ${expectedRevision}, ${write.head}, ${v?.version ?? 0},
            ${v?.record ?? null}, ${write.pruneBelow ?? 0}) AS epoch`,
      expectedRevision + 1,
      () =>
        `Secret "${path}" already has a row for version ${v?.version}, which its head does not know`,
    );
  }

  /** See {@linkcode StoreBackend.readIntegrity}: one snapshot. */
  /** See {@linkcode StoreBackend.storedPosition}: one write per log entry. */
  async storedPosition(): Promise<{ epoch: number; generation: number }> {
    const [row] = await this.#query(() =>
      this.sql`
        SELECT epoch, generation + (SELECT count(*) FROM spike_integrity_log)
          AS generation
        FROM spike_integrity WHERE id = 1`
    );
    return {
      epoch: Number(row?.epoch ?? 0),
      generation: Number(row?.generation ?? 0),
    };
  }

  readIntegrity(): Promise<IntegritySnapshot> {
    return this.#query(() =>
      this.sql.begin(
        "isolation level repeatable read read only",
        async (tx) => {
          const rows = await tx`
          SELECT path, revision FROM spike_secrets ORDER BY path`.values();
          const [set] = await tx`
          SELECT generation FROM spike_policy_set WHERE id = 1`;
          const [row] = await tx`
          SELECT epoch, generation, digest, mac FROM spike_integrity
          WHERE id = 1`;
          const log = await tx`
          SELECT id, path, from_revision, to_revision
          FROM spike_integrity_log ORDER BY id`.values();
          // An empty MAC: migrated from schema 2, to be anchored.
          const mac = row ? bytes(row.mac) : new Uint8Array(0);
          return {
            ...(row && mac.length > 0
              ? {
                row: {
                  epoch: Number(row.epoch),
                  generation: Number(row.generation),
                  digest: bytes(row.digest),
                  mac,
                },
              }
              : {}),
            needsAnchor: row !== undefined && mac.length === 0,
            pending: log.map((e): PendingWrite => ({
              id: Number(e[0]),
              path: e[1] as string | null,
              from: Number(e[2]),
              to: Number(e[3]),
            })),
            paths: rows.map((r) => r[0] as string),
            revisions: rows.map((r) => Number(r[1])),
            policyGeneration: Number(set?.generation ?? 0),
          };
        },
      )
    );
  }

  /** See {@linkcode StoreBackend.anchorIntegrity}. */
  async anchorIntegrity(
    row: IntegrityRow,
    folded: readonly PendingWrite[] = [],
  ): Promise<void> {
    await this.#query(() =>
      this.sql.begin(async (tx) => {
        await tx`
          INSERT INTO spike_integrity (id, epoch, generation, digest, mac)
          VALUES (1, ${row.epoch}, ${row.generation}, ${row.digest}, ${row.mac})
          ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch,
            generation = excluded.generation, digest = excluded.digest,
            mac = excluded.mac`;
        await this.#dropLogged(tx, folded);
      })
    );
  }

  /** See {@linkcode StoreBackend.foldPending}. */
  async foldPending(ledger: WriteLedger): Promise<boolean> {
    const mark = ledger.mark();
    let folded = false;
    try {
      folded = await this.#query(() =>
        this.sql.begin(async (tx) => {
          const [row] = await tx`
            SELECT mac FROM spike_integrity WHERE id = 1 FOR UPDATE`;
          // Another replica folded, or the row changed: rebuild first.
          if (!row || !sameBytes(bytes(row.mac), ledger.row.mac)) return false;
          const log = (await tx`
            SELECT id, path, from_revision, to_revision
            FROM spike_integrity_log`.values()).map((e): PendingWrite => ({
            id: Number(e[0]),
            path: e[1] as string | null,
            from: Number(e[2]),
            to: Number(e[3]),
          }));
          // Each path's writes in the order they chain.
          log.sort((a, b) =>
            (a.path ?? "") < (b.path ?? "")
              ? -1
              : (a.path ?? "") > (b.path ?? "")
              ? 1
              : a.from - b.from
          );
          for (const e of log) {
            if (e.path === null) ledger.policyWritten(e.from, e.to);
            else ledger.secretWritten(e.path, e.from, e.to);
          }
          const sealed = ledger.seal();
          if (!sealed) return true;
          await tx`
            UPDATE spike_integrity SET epoch = ${sealed.row.epoch},
              generation = ${sealed.row.generation},
              digest = ${sealed.row.digest}, mac = ${sealed.row.mac}
            WHERE id = 1`;
          await this.#dropLogged(tx, log);
          return true;
        })
      );
    } catch (e) {
      // A log that does not chain onto the ledger: rebuilt and checked.
      if (!(e instanceof IntegrityError)) {
        ledger.rollbackTo(mark);
        throw e;
      }
    }
    if (folded) ledger.commit();
    else ledger.rollbackTo(mark);
    return folded;
  }

  // Drops log entries the integrity row now includes.
  async #dropLogged(
    tx: postgres.TransactionSql,
    entries: readonly PendingWrite[],
  ): Promise<void> {
    if (entries.length === 0) return;
    const ids = entries.map((e) => e.id);
    await tx`DELETE FROM spike_integrity_log WHERE id IN ${tx(ids)}`;
  }

  /** See {@linkcode StoreBackend.attachLedger}. */
  attachLedger(ledger: WriteLedger | undefined): void {
    this.#ledger = ledger;
  }

  /** See {@linkcode StoreBackend.readAuditAnchor}: one per replica name. */
  readAuditAnchor(name: string): Promise<AuditAnchorRow | undefined> {
    return this.#query(async () => {
      const [r] = await this.sql`
        SELECT seq, hash, mac FROM spike_audit_anchor WHERE name = ${name}`;
      return r &&
        { seq: Number(r.seq), hash: bytes(r.hash), mac: bytes(r.mac) };
    });
  }

  /** See {@linkcode StoreBackend.writeAuditAnchor}: one per replica name. */
  async writeAuditAnchor(name: string, anchor: AuditAnchorRow): Promise<void> {
    await this.#query(() =>
      this.sql`
        INSERT INTO spike_audit_anchor (name, seq, hash, mac)
        VALUES (${name}, ${anchor.seq}, ${anchor.hash}, ${anchor.mac})
        ON CONFLICT (name) DO UPDATE SET seq = excluded.seq,
          hash = excluded.hash, mac = excluded.mac`
    );
  }

  /** See {@linkcode StoreBackend.listSecretPaths}. */
  listSecretPaths(range: KeyRange): Promise<string[]> {
    return this.#query(async () => {
      const prefix = range.prefix ?? "";
      const after = range.after ?? "";
      const limit = range.limit ?? null;
      const rows = prefix === ""
        ? await this.sql`
            SELECT path FROM spike_secrets WHERE path > ${after}
            ORDER BY path LIMIT ${limit}`.values()
        : await this.sql`
            SELECT path FROM spike_secrets
            WHERE path > ${after} AND path >= ${prefix}
              AND path < ${prefixEnd(prefix)}
            ORDER BY path LIMIT ${limit}`.values();
      return rows.map((r) => r[0] as string);
    });
  }

  /** See {@linkcode StoreBackend.readSecretRecords}. */
  readSecretRecords(range: KeyRange): Promise<SecretRecords[]> {
    return this.#query(async () => {
      const prefix = range.prefix ?? "";
      const after = range.after ?? "";
      const limit = range.limit ?? null;
      const rows = prefix === ""
        ? await recordsQuery(this.sql, after, limit)
        : await this.sql`
            SELECT s.path, s.revision, s.head, v.version, v.record
            FROM (SELECT path, revision, head FROM spike_secrets
                  WHERE path > ${after} AND path >= ${prefix}
                    AND path < ${prefixEnd(prefix)}
                  ORDER BY path LIMIT ${limit}) s
            LEFT JOIN spike_secret_versions v ON v.path = s.path
            ORDER BY s.path, v.version`;
      return groupRecords(rows);
    });
  }

  /** See {@linkcode StoreBackend.resealSecret}: one transaction. */
  resealSecret(
    path: string,
    revision: number,
    head: Sealed,
    versions: readonly { readonly version: number; readonly record: Sealed }[],
  ): Promise<boolean> {
    return this.#query(() =>
      this.sql.begin(async (tx) => {
        const done = await tx`
          UPDATE spike_secrets SET head = ${head}
          WHERE path = ${path} AND revision = ${revision} RETURNING 1`;
        if (done.length === 0) return false;
        for (const v of versions) {
          await tx`
            UPDATE spike_secret_versions SET record = ${v.record}
            WHERE path = ${path} AND version = ${v.version}`;
        }
        return true;
      })
    );
  }

  /** See {@linkcode StoreBackend.resealPolicies}: one transaction. */
  resealPolicies(
    generation: number,
    set: Sealed,
    rows: readonly { readonly name: string; readonly record: Sealed }[],
  ): Promise<boolean> {
    return this.#query(() =>
      this.sql.begin(async (tx) => {
        const done = await tx`
          UPDATE spike_policy_set SET record = ${set}
          WHERE id = 1 AND generation = ${generation} RETURNING 1`;
        if (done.length === 0) return false;
        for (const row of rows) {
          await tx`
            UPDATE spike_policies SET record = ${row.record}
            WHERE name = ${row.name}`;
        }
        return true;
      })
    );
  }

  /** See {@linkcode StoreBackend.countRecordsBelowTerm}. */
  countRecordsBelowTerm(term: number): Promise<number> {
    return this.#query(async () => {
      // Headers are `0x02 ‖ term (4 bytes, big-endian)`: bytea compares
      // byte-wise, which for these 4 bytes is numeric order.
      const t = termBytes(term);
      const [r] = await this.sql`
        SELECT
          (SELECT count(*) FROM spike_secrets
            WHERE substring(head from 2 for 4) < ${t})
          + (SELECT count(*) FROM spike_secret_versions
            WHERE substring(record from 2 for 4) < ${t})
          + (SELECT count(*) FROM spike_policies
            WHERE substring(record from 2 for 4) < ${t})
          + (SELECT count(*) FROM spike_policy_set
            WHERE substring(record from 2 for 4) < ${t}) AS n`;
      return Number(r!.n);
    });
  }

  /** See {@linkcode StoreBackend.readPolicySet}. */
  readPolicySet(): Promise<PolicySetRow | undefined> {
    return this.#query(async () => {
      const [r] = await this.sql`
        SELECT generation, record FROM spike_policy_set WHERE id = 1`;
      return r && { generation: Number(r.generation), record: bytes(r.record) };
    });
  }

  /**
   * The generation of the policy set, 0 before the first policy write: the
   * cheap check of whether this replica's policies are current.
   */
  policyGeneration(): Promise<number> {
    return this.#query(async () => {
      const [r] = await this.sql`
        SELECT coalesce(max(generation), 0) AS g FROM spike_policy_set`;
      return Number(r!.g);
    });
  }

  /** See {@linkcode StoreBackend.readPolicy}. */
  readPolicy(name: string): Promise<PolicyRead> {
    return this.#query(async () => {
      const [r] = await this.sql`
        SELECT s.generation, s.record AS set_record,
               (SELECT record FROM spike_policies WHERE name = ${name}) AS record
        FROM (SELECT 1) one
        LEFT JOIN spike_policy_set s ON s.id = 1`;
      return {
        ...(r!.generation === null ? {} : {
          set: {
            generation: Number(r!.generation),
            record: bytes(r!.set_record),
          },
        }),
        ...(r!.record === null ? {} : { record: bytes(r!.record) }),
      };
    });
  }

  /** See {@linkcode StoreBackend.readPolicies}: one statement. */
  readPolicies(): Promise<PolicySnapshot> {
    return this.#query(async () => {
      const rows = await this.sql`
        SELECT 0 AS kind, NULL AS name, generation, record
          FROM spike_policy_set WHERE id = 1
        UNION ALL
        SELECT 1, name, NULL, record FROM spike_policies
        ORDER BY kind, name`;
      let set: PolicySetRow | undefined;
      const out: { name: string; record: Sealed }[] = [];
      for (const r of rows) {
        if (Number(r.kind) === 0) {
          set = { generation: Number(r.generation), record: bytes(r.record) };
        } else {
          out.push({ name: r.name as string, record: bytes(r.record) });
        }
      }
      return { ...(set ? { set } : {}), rows: out };
    });
  }

  /** See {@linkcode StoreBackend.writePolicy}; notifies every replica. */
  writePolicy(
    expectedGeneration: number,
    set: Sealed,
    change: PolicyChange,
  ): Promise<WriteResult> {
    return this.#write(
      (id, epoch) =>
        this.sql`
          SELECT spike_write_policy(${id}, ${epoch}, ${expectedGeneration},
            ${set}, ${change.name}, ${change.record ?? null}) AS epoch`,
      expectedGeneration + 1,
      () => "Policy write refused",
    );
  }

  // Runs one write function with a fresh write id and this replica's fence
  // epoch. A broken connection leaves the outcome unknown: it is settled
  // by the id.
  #write(
    run: (writeId: Uint8Array, epoch: number) => Promise<Row[]>,
    revision: number,
    versionExists: () => string,
  ): Promise<WriteResult> {
    return this.#track(this.#writeNow(run, revision, versionExists));
  }

  async #writeNow(
    run: (writeId: Uint8Array, epoch: number) => Promise<Row[]>,
    revision: number,
    versionExists: () => string,
  ): Promise<WriteResult> {
    for (let attempt = 0;; attempt++) {
      if (this.#closed) throw new StoreError("Store is closed");
      const writeId = crypto.getRandomValues(new Uint8Array(16));
      const epoch = this.#epoch;
      try {
        const [row] = await run(writeId, epoch);
        this.#epoch = Math.max(this.#epoch, Number(row!.epoch));
        this.#ledger?.logged();
        return { ok: true, revision };
      } catch (e) {
        const state = sqlState(e);
        if (state === CONFLICT_STATE) return { ok: false, conflict: true };
        if (state === VERSION_EXISTS_STATE) {
          throw new IntegrityError(versionExists());
        }
        if (state === STALE_EPOCH_STATE && attempt < STALE_EPOCH_RETRIES) {
          // Refused before it changed anything: send it again.
          this.#epoch = await this.#queryNow(() => fenceEpoch(this.sql));
          continue;
        }
        if (state === "57014") throw unreachable(e, this.settings);
        if (isConnectionError(e)) {
          const settled = await this.#settle(writeId, epoch, revision, e);
          if (settled) this.#ledger?.logged();
          return settled ?? { ok: false, conflict: true };
        }
        throw new ApiError(
          ErrorCode.StoreUnavailable,
          `Store write failed: ${reason(e)}`,
          { cause: e },
        );
      }
    }
  }

  /**
   * Learns whether the write `writeId` committed, and makes sure it never
   * will if it did not: `spike_settle_write` either finds the write's fence
   * row (committed; it waits for the write if that is still running) or
   * inserts one first, so the write, should it still reach the server,
   * fails on the duplicate id.
   *
   * @returns the write's result when it committed, undefined when fenced
   * @throws {ApiError} `api_internal_error` when the outcome stays unknown:
   * the database stays out of reach, or the fence epoch moved on twice
   * since the write (its row may be pruned); a blind retry could store
   * twice
   */
  async #settle(
    writeId: Uint8Array,
    epoch: number,
    revision: number,
    cause: unknown,
  ): Promise<WriteResult | undefined> {
    const deadline = Date.now() + SETTLE_MS;
    let delay = 100;
    let why =
      `the database connection broke during the write and stayed out of reach (${
        reason(cause)
      })`;
    while (Date.now() < deadline && !this.#closed) {
      try {
        const [row] = await this.sql`
          SELECT spike_settle_write(${writeId}, ${epoch}) AS outcome`;
        return row!.outcome === "committed"
          ? { ok: true, revision }
          : undefined;
      } catch (e) {
        if (sqlState(e) === STALE_EPOCH_STATE) {
          why =
            "the database connection broke during the write, and the write's fence record may have been pruned since";
          break;
        }
        if (!isConnectionError(e)) break;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2_000);
    }
    throw new ApiError(
      ErrorCode.Internal,
      `The outcome of a write is unknown: ${why}`,
      { cause },
    );
  }

  /**
   * Raises the write fence epoch and drops the fence rows that no write
   * and no settling can consult any more (see `postgres_schema.ts`): those
   * of the epochs before the previous one. The push leader calls it every
   * `SPIKE_NEXUS_WRITE_FENCE_PRUNE_INTERVAL`, so the table holds the writes
   * of two intervals at most.
   *
   * @returns how many rows were dropped
   */
  async pruneWriteFence(): Promise<number> {
    const [row] = await this.#query(() =>
      this.sql`SELECT spike_prune_write_fence() AS dropped`
    );
    return Number(row!.dropped);
  }

  /** Closes the pool, once the running operations ended (5 s at most). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(this.#running),
      new Promise((r) => timer = setTimeout(r, 5_000)),
    ]);
    clearTimeout(timer);
    // Nothing of ours runs now. Not sql.end's own wait: postgres.js keeps
    // waiting for a query it already failed when its connection broke.
    await this.sql.end({ timeout: 0 });
  }
}
