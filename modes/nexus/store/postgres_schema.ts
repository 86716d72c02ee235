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
 * which rolls the whole call back. Each call first inserts its write id
 * into `spike_write_fence`: a write whose outcome the caller did not learn
 * (connection lost mid-commit) is settled by inserting the same id, which
 * either finds it (the write committed) or fences it out for good (the
 * write, should it still arrive, fails on the duplicate id).
 *
 * Versions: `spike_meta.schema_version` holds the store format; each entry
 * of {@linkcode MIGRATIONS} lifts a store one version, in one transaction
 * under an advisory lock, so replicas starting together migrate once.
 *
 * @module
 */
import { SCHEMA_VERSION, StoreError } from "./backend.ts";
import type { Sql } from "./postgres_connect.ts";

/** SQLSTATE raised by a write whose compare-and-set found another revision. */
export const CONFLICT_STATE = "SP001";
/** SQLSTATE raised when a version row exists that the head did not know. */
export const VERSION_EXISTS_STATE = "SP002";
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

const FORMAT_2 = `
CREATE TABLE spike_meta (
  id integer PRIMARY KEY CHECK (id = 1),
  schema_version integer NOT NULL,
  state text NOT NULL DEFAULT 'empty'
    CHECK (state IN ('empty', 'pending', 'ready')),
  store_id bytea,
  key_check bytea,
  threshold integer,
  share_count integer,
  keyring bytea,
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
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX spike_write_fence_at ON spike_write_fence (at);
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

CREATE FUNCTION spike_write_secret(
  p_write bytea, p_path text, p_expected bigint, p_head bytea,
  p_version bigint, p_record bytea, p_prune bigint
) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  changed integer;
BEGIN
  INSERT INTO spike_write_fence (write_id) VALUES (p_write);
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
  RETURN p_expected + 1;
END
$fn$;

CREATE FUNCTION spike_write_policy(
  p_write bytea, p_expected bigint, p_set bytea, p_name text, p_record bytea
) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  changed integer;
BEGIN
  INSERT INTO spike_write_fence (write_id) VALUES (p_write);
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
  -- Sent at commit, to every replica listening: they reload their policies.
  PERFORM pg_notify('${POLICY_CHANNEL}',
    current_schema() || ' ' || (p_expected + 1));
  RETURN p_expected + 1;
END
$fn$;

INSERT INTO spike_meta (id, schema_version) VALUES (1, 2);
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
 * format 2, the first format this backend writes, so the only step today
 * creates it; a later format adds its step here.
 */
export const MIGRATIONS: ReadonlyMap<number, { to: number; sql: string }> =
  new Map([[0, { to: 2, sql: FORMAT_2 }]]);

/**
 * Creates the tables, or migrates them to the current version, once across
 * every replica (advisory lock held for the transaction).
 *
 * @param sql the pool
 * @param where the store, for messages (no password)
 * @throws {StoreError} for a newer or unknown schema version, or tables
 * that are not a SPIKE store
 */
export async function migrate(sql: Sql, where: string): Promise<void> {
  await sql.begin(async (tx) => {
    await tx.unsafe(`SELECT pg_advisory_xact_lock(${lockKey("migrate")})`);
    for (;;) {
      const [row] = await tx.unsafe(
        `SELECT to_regclass(current_schema() || '.spike_meta') IS NOT NULL AS present`,
      );
      let version = 0;
      if (row!.present) {
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
      if (version === SCHEMA_VERSION) {
        await tx.unsafe(LIFECYCLE_TABLES);
        return;
      }
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
  });
}
