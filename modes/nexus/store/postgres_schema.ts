// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The PostgreSQL schema of store format 2, created and migrated by nexus.
 * Tables are prefixed `spike_` and live in the session's current schema
 * (the database's `public`, or what `options=-c search_path=…` names), so
 * one database can hold several stores in several schemas. Advisory lock
 * keys and notification payloads name the schema for the same reason.
 *
 * Every write is one call of a PL/pgSQL function: one statement, one round
 * trip, one transaction, no idle time inside a transaction. The
 * compare-and-set is the `UPDATE … WHERE revision = $n` (or generation) in
 * READ COMMITTED; a lost race leaves no row changed and raises `SP001`,
 * which rolls the whole call back.
 *
 * Write fence. Each call first inserts its write id into
 * `spike_write_fence`: a write whose outcome the caller did not learn
 * (connection lost mid-commit) is settled by `spike_settle_write`, which
 * inserts the same id marked `fenced`: it either finds the write's row (the
 * write committed) or fences the write out (should it still arrive, it
 * fails on the duplicate id). Rows are pruned by fence epoch, not by age,
 * so that no bound on time (how long a write may sit in a socket, a
 * pipeline or a frozen process) is needed for this to hold:
 * - `spike_meta.fence_epoch` (E) only grows; `spike_prune_write_fence`
 *   raises it by one and drops the rows of epochs up to E − 2, in one
 *   transaction;
 * - a write carries the epoch its replica last saw (x), stores it in its
 *   row, and is refused (`SP003`, nothing changed) when E > x + 1, checked
 *   after its row went in: a write whose fence row may have been pruned
 *   can no longer commit, however late it arrives;
 * - the settling insert is refused the same way (`SP003`): the outcome of a
 *   write whose row may have been pruned is unknown, and said so, never
 *   taken for "fenced".
 * A row therefore outlives every write and every settling that could still
 * consult it, and the table holds the writes of the last two prune periods
 * at most. The replica that leads the keeper push loop prunes.
 *
 * Versions: `spike_meta.schema_version` holds the store format; each entry
 * of {@linkcode MIGRATIONS} lifts a store one version. Within a format,
 * `spike_meta.layout` numbers the PostgreSQL objects (tables, functions)
 * and {@linkcode LAYOUT_STEPS} lifts it, before the format steps (format 3
 * replaces the current layout's write functions). Both run in one
 * transaction under an advisory lock, so replicas starting together migrate
 * once.
 *
 * Schema 3 (the store digest, `store_digest.ts`): the write functions also
 * append `(path, from, to)` to `spike_integrity_log` (the policy set with a
 * null path). The database holds no key, so it cannot update the keyed
 * digest itself: the push leader folds the log into `spike_integrity` at
 * each checkpoint (`PostgresBackend.foldPending`), and an unlock takes the
 * entries not folded yet back out of the rows before it compares them with
 * the row. A row with an empty MAC marks a store migrated from schema 2
 * that the first unlock anchors.
 *
 * @module
 */
import type postgres from "postgres";
import { SCHEMA_VERSION, StoreError } from "./backend.ts";
import type { Sql } from "./postgres_connect.ts";

/** SQLSTATE raised by a write whose compare-and-set found another revision. */
export const CONFLICT_STATE = "SP001";
/** SQLSTATE raised when a version row exists that the head did not know. */
export const VERSION_EXISTS_STATE = "SP002";
/**
 * SQLSTATE raised when a write or a settling carries a fence epoch older
 * than the one before the current (its fence row may be pruned).
 */
export const STALE_EPOCH_STATE = "SP003";
/** The PostgreSQL layout this build creates and uses. */
export const LAYOUT = 2;
/** The notification channel of policy changes (payload: schema, generation). */
export const POLICY_CHANNEL = "spike_policy";

/**
 * The advisory lock key of `purpose` in the current schema, as SQL.
 *
 * @param purpose what the lock guards
 * @returns an SQL expression of type bigint
 */
export function lockKey(purpose: "migrate" | "create" | "leader"): string {
  return `hashtextextended(current_schema() || '/spike/${purpose}', 0)`;
}

// The share commitments of every store a creator left half-made and the
// next one discarded, since the store became empty: keepers holding their
// shards may be given new ones. Cleared when a store becomes ready.
const ABANDONED_SHARDS = `
CREATE TABLE spike_abandoned_shards (
  store_id bytea NOT NULL,
  share_index integer NOT NULL,
  commitment bytea NOT NULL,
  PRIMARY KEY (store_id, share_index)
);
`;

// The write functions of the current layout (see the module notes).
const WRITE_FUNCTIONS = `
CREATE OR REPLACE FUNCTION spike_fence(p_write bytea, p_epoch bigint)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  current_epoch bigint;
BEGIN
  INSERT INTO spike_write_fence (write_id, epoch) VALUES (p_write, p_epoch);
  -- After the insert, in a statement of its own (a new snapshot): a prune
  -- that dropped a row this id would have met has raised the epoch.
  SELECT fence_epoch INTO current_epoch FROM spike_meta WHERE id = 1;
  IF current_epoch > p_epoch + 1 THEN
    RAISE EXCEPTION 'fence epoch % is pruned', p_epoch
      USING ERRCODE = '${STALE_EPOCH_STATE}';
  END IF;
  RETURN current_epoch;
END
$fn$;

CREATE OR REPLACE FUNCTION spike_write_secret(
  p_write bytea, p_epoch bigint, p_path text, p_expected bigint,
  p_head bytea, p_version bigint, p_record bytea, p_prune bigint
) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  fence_now bigint;
  changed integer;
BEGIN
  fence_now := spike_fence(p_write, p_epoch);
  IF p_expected = 0 THEN
    INSERT INTO spike_secrets (path, revision, head)
      VALUES (p_path, 1, p_head) ON CONFLICT (path) DO NOTHING;
  ELSE
    UPDATE spike_secrets SET revision = p_expected + 1, head = p_head
      WHERE path = p_path AND revision = p_expected;
  END IF;
  GET DIAGNOSTICS changed = ROW_COUNT;
  IF changed = 0 THEN
    RAISE EXCEPTION 'revision moved' USING ERRCODE = '${CONFLICT_STATE}';
  END IF;
  IF p_version > 0 THEN
    INSERT INTO spike_secret_versions (path, version, record)
      VALUES (p_path, p_version, p_record) ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS changed = ROW_COUNT;
    IF changed = 0 THEN
      RAISE EXCEPTION 'version row exists' USING ERRCODE = '${VERSION_EXISTS_STATE}';
    END IF;
  END IF;
  IF p_prune > 0 THEN
    DELETE FROM spike_secret_versions
      WHERE path = p_path AND version < p_prune;
  END IF;
  INSERT INTO spike_integrity_log (path, from_revision, to_revision)
    VALUES (p_path, p_expected, p_expected + 1);
  RETURN fence_now;
END
$fn$;

CREATE OR REPLACE FUNCTION spike_write_policy(
  p_write bytea, p_epoch bigint, p_expected bigint, p_set bytea,
  p_name text, p_record bytea
) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  fence_now bigint;
  changed integer;
BEGIN
  fence_now := spike_fence(p_write, p_epoch);
  IF p_expected = 0 THEN
    INSERT INTO spike_policy_set (id, generation, record)
      VALUES (1, 1, p_set) ON CONFLICT (id) DO NOTHING;
  ELSE
    UPDATE spike_policy_set SET generation = p_expected + 1, record = p_set
      WHERE id = 1 AND generation = p_expected;
  END IF;
  GET DIAGNOSTICS changed = ROW_COUNT;
  IF changed = 0 THEN
    RAISE EXCEPTION 'generation moved' USING ERRCODE = '${CONFLICT_STATE}';
  END IF;
  IF p_record IS NULL THEN
    DELETE FROM spike_policies WHERE name = p_name;
  ELSE
    INSERT INTO spike_policies (name, record) VALUES (p_name, p_record)
      ON CONFLICT (name) DO UPDATE SET record = excluded.record;
  END IF;
  INSERT INTO spike_integrity_log (path, from_revision, to_revision)
    VALUES (NULL, p_expected, p_expected + 1);
  -- Sent at commit, to every replica listening: they reload their policies.
  PERFORM pg_notify('${POLICY_CHANNEL}',
    current_schema() || ' ' || (p_expected + 1));
  RETURN fence_now;
END
$fn$;

-- 'committed' when the write's own row is there, 'fenced' when this
-- settling's row is (a retry whose first answer was lost), else fences the
-- write out; SP003 (nothing inserted) when the row may have been pruned.
CREATE OR REPLACE FUNCTION spike_settle_write(p_write bytea, p_epoch bigint)
RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
  was_fenced boolean;
BEGIN
  INSERT INTO spike_write_fence (write_id, epoch, fenced)
    VALUES (p_write, p_epoch, true) ON CONFLICT (write_id) DO NOTHING;
  IF NOT FOUND THEN
    SELECT fenced INTO was_fenced FROM spike_write_fence
      WHERE write_id = p_write;
    IF FOUND THEN
      RETURN CASE WHEN was_fenced THEN 'fenced' ELSE 'committed' END;
    END IF;
  END IF;
  IF (SELECT fence_epoch FROM spike_meta WHERE id = 1) > p_epoch + 1 THEN
    RAISE EXCEPTION 'fence epoch % is pruned', p_epoch
      USING ERRCODE = '${STALE_EPOCH_STATE}';
  END IF;
  RETURN 'fenced';
END
$fn$;

-- Raises the fence epoch and drops the rows no write or settling can
-- consult any more; returns how many.
CREATE OR REPLACE FUNCTION spike_prune_write_fence()
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  raised bigint;
  dropped bigint;
BEGIN
  UPDATE spike_meta SET fence_epoch = fence_epoch + 1 WHERE id = 1
    RETURNING fence_epoch INTO raised;
  DELETE FROM spike_write_fence WHERE epoch <= raised - 2;
  GET DIAGNOSTICS dropped = ROW_COUNT;
  RETURN dropped;
END
$fn$;
`;

const FORMAT_2 = `
CREATE TABLE spike_meta (
  id integer PRIMARY KEY CHECK (id = 1),
  schema_version integer NOT NULL,
  layout integer NOT NULL,
  state text NOT NULL DEFAULT 'empty'
    CHECK (state IN ('empty', 'pending', 'ready')),
  store_id bytea,
  key_check bytea,
  threshold integer,
  share_count integer,
  keyring bytea,
  fence_epoch bigint NOT NULL DEFAULT 1,
  changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE spike_shard_commitments (
  share_index integer PRIMARY KEY CHECK (share_index >= 1),
  commitment bytea NOT NULL
);
CREATE TABLE spike_secrets (
  path text COLLATE "C" PRIMARY KEY,
  revision bigint NOT NULL CHECK (revision >= 1),
  head bytea NOT NULL
);
CREATE TABLE spike_secret_versions (
  path text COLLATE "C" NOT NULL,
  version bigint NOT NULL CHECK (version >= 1),
  record bytea NOT NULL,
  PRIMARY KEY (path, version)
);
CREATE TABLE spike_policies (
  name text COLLATE "C" PRIMARY KEY,
  record bytea NOT NULL
);
CREATE TABLE spike_policy_set (
  id integer PRIMARY KEY CHECK (id = 1),
  generation bigint NOT NULL CHECK (generation >= 1),
  record bytea NOT NULL
);
CREATE TABLE spike_write_fence (
  write_id bytea PRIMARY KEY,
  epoch bigint NOT NULL,
  fenced boolean NOT NULL DEFAULT false,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX spike_write_fence_epoch ON spike_write_fence (epoch);
${ABANDONED_SHARDS}
CREATE TABLE spike_replicas (
  id text PRIMARY KEY,
  name text NOT NULL,
  address text,
  listen text NOT NULL,
  pid integer NOT NULL,
  state text NOT NULL,
  session_pid integer,
  started_at timestamptz NOT NULL,
  seen_at timestamptz NOT NULL
);
${WRITE_FUNCTIONS}
INSERT INTO spike_meta (id, schema_version, layout) VALUES (1, 2, ${LAYOUT});
`;

// Layout 1 (the backend as it first landed): fence rows pruned by age by
// nobody, one abandoned store remembered (in memory). Its fence rows get
// the first epoch; its functions are replaced.
const LAYOUT_2 = `
${ABANDONED_SHARDS}
ALTER TABLE spike_meta
  ADD COLUMN layout integer NOT NULL DEFAULT 1,
  ADD COLUMN fence_epoch bigint NOT NULL DEFAULT 1;
ALTER TABLE spike_meta ALTER COLUMN layout DROP DEFAULT;
ALTER TABLE spike_write_fence
  ADD COLUMN epoch bigint NOT NULL DEFAULT 1,
  ADD COLUMN fenced boolean NOT NULL DEFAULT false;
ALTER TABLE spike_write_fence ALTER COLUMN epoch DROP DEFAULT;
DROP INDEX spike_write_fence_at;
CREATE INDEX spike_write_fence_epoch ON spike_write_fence (epoch);
DROP FUNCTION spike_write_secret(bytea, text, bigint, bytea, bigint, bytea,
  bigint);
DROP FUNCTION spike_write_policy(bytea, bigint, bytea, text, bytea);
${WRITE_FUNCTIONS}
`;

const INTEGRITY = `
CREATE INDEX spike_secrets_revisions ON spike_secrets (path)
  INCLUDE (revision);
CREATE TABLE spike_integrity (
  id integer PRIMARY KEY CHECK (id = 1),
  epoch bigint NOT NULL CHECK (epoch >= 0),
  generation bigint NOT NULL CHECK (generation >= 0),
  digest bytea NOT NULL,
  mac bytea NOT NULL
);
INSERT INTO spike_integrity (id, epoch, generation, digest, mac)
  VALUES (1, 0, 0, '', '');
CREATE TABLE spike_integrity_log (
  id bigserial PRIMARY KEY,
  path text COLLATE "C",
  from_revision bigint NOT NULL,
  to_revision bigint NOT NULL
);
CREATE TABLE spike_audit_anchor (
  name text COLLATE "C" PRIMARY KEY,
  seq bigint NOT NULL,
  hash bytea NOT NULL,
  mac bytea NOT NULL
);

${WRITE_FUNCTIONS}
`;

/**
 * The tables of the key and data lifecycle: a rekey's pending root key and
 * a restored backup's check. Created (if absent) with every start, under
 * the migration lock, so stores made before them gain them without a new
 * schema version.
 */
const LIFECYCLE_TABLES = `
CREATE TABLE IF NOT EXISTS spike_pending_root_key (
  id integer PRIMARY KEY CHECK (id = 1),
  key_check bytea NOT NULL,
  threshold integer NOT NULL,
  share_count integer NOT NULL,
  commitments text NOT NULL,
  keyring bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS spike_restore_check (
  id integer PRIMARY KEY CHECK (id = 1),
  digest bytea NOT NULL,
  mac bytea NOT NULL
);
`;

/**
 * The steps between schema versions: the entry at `v` lifts a store from
 * version `v` (0: no tables yet) to `to`. PostgreSQL stores start at store
 * format 2, the first format this backend writes; 2 → 3 adds the store
 * digest's tables and logs every write for it.
 */
export const MIGRATIONS: ReadonlyMap<number, { to: number; sql: string }> =
  new Map([[0, { to: 2, sql: FORMAT_2 }], [2, { to: 3, sql: INTEGRITY }]]);

/**
 * The steps between layouts of one store format: the entry at `n` lifts a
 * store from layout `n` to `n + 1`. Layout 1 has no `layout` column.
 */
export const LAYOUT_STEPS: ReadonlyMap<number, string> = new Map([
  [1, LAYOUT_2],
]);

/**
 * Creates the tables, or migrates them to the current version and layout,
 * once across every replica (advisory lock held for the transaction).
 *
 * @param sql the pool
 * @param where the store, for messages (no password)
 * @throws {StoreError} for a newer or unknown schema version or layout, or
 * tables that are not a SPIKE store
 */
export async function migrate(sql: Sql, where: string): Promise<void> {
  await sql.begin(async (tx) => {
    await tx.unsafe(`SELECT pg_advisory_xact_lock(${lockKey("migrate")})`);
    // The layout first: the format steps after 2 replace the write
    // functions of the current layout.
    if (await hasMeta(tx)) await migrateLayout(tx, where);
    await migrateFormat(tx, where);
    await tx.unsafe(LIFECYCLE_TABLES);
  });
}

async function hasMeta(tx: postgres.TransactionSql): Promise<boolean> {
  const [row] = await tx.unsafe(
    `SELECT to_regclass(current_schema() || '.spike_meta') IS NOT NULL AS present`,
  );
  return row!.present;
}

async function migrateFormat(tx: postgres.TransactionSql, where: string) {
  for (;;) {
    let version = 0;
    if (await hasMeta(tx)) {
      const [meta] = await tx.unsafe(
        "SELECT schema_version FROM spike_meta WHERE id = 1",
      );
      if (!meta) {
        throw new StoreError(
          `The database ${where} has a spike_meta table without its row: it is not a SPIKE store`,
        );
      }
      version = Number(meta.schema_version);
    }
    if (version === SCHEMA_VERSION) return;
    if (version > SCHEMA_VERSION) {
      throw new StoreError(
        `The database ${where} has schema version ${version}, newer than this build supports (${SCHEMA_VERSION}): run a newer SPIKE`,
      );
    }
    const step = MIGRATIONS.get(version);
    if (!step) {
      throw new StoreError(
        `The database ${where} has unknown schema version ${version}`,
      );
    }
    await tx.unsafe(step.sql);
    await tx.unsafe(
      `UPDATE spike_meta SET schema_version = ${step.to} WHERE id = 1`,
    );
  }
}

async function migrateLayout(tx: postgres.TransactionSql, where: string) {
  for (;;) {
    const [row] = await tx.unsafe(
      `SELECT EXISTS (SELECT 1 FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = 'spike_meta'
           AND column_name = 'layout') AS numbered`,
    );
    const layout = row!.numbered
      ? Number((await tx.unsafe("SELECT layout FROM spike_meta"))[0]!.layout)
      : 1;
    if (layout === LAYOUT) return;
    if (layout > LAYOUT) {
      throw new StoreError(
        `The database ${where} has PostgreSQL layout ${layout}, newer than this build supports (${LAYOUT}): run a newer SPIKE`,
      );
    }
    const step = LAYOUT_STEPS.get(layout);
    if (!step) {
      throw new StoreError(
        `The database ${where} has unknown PostgreSQL layout ${layout}`,
      );
    }
    await tx.unsafe(step);
    await tx.unsafe(`UPDATE spike_meta SET layout = ${layout + 1}`);
  }
}
