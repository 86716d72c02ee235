// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * PostgreSQL for the tests. `deno task test` (and so CI) starts one
 * throwaway cluster for the whole run and passes its superuser URL in
 * `SPIKE_TEST_DATABASE_URL`; a test file run on its own starts its own
 * cluster and stops it when the file ends. When PostgreSQL cannot start
 * here, {@linkcode pg} is undefined and the PostgreSQL tests are skipped
 * with a loud message (the SQLite and memory tests still run).
 *
 * Each test gets its own schema in one database, owned by a login role
 * that is no superuser, with the grants the README gives nexus.
 *
 * @module
 */
import postgres from "postgres";
import { type PgCluster, startPgCluster } from "../scripts/pg_cluster.ts";
import type { DatabaseSettings } from "../lib/config/database_url.ts";
import type { PoolSettings } from "../modes/nexus/store/postgres_connect.ts";

/** The role and database the tests' nexus stores live in. */
export const TEST_ROLE = "spike_nexus";
const TEST_PASSWORD = "spike-test-password";

/** A reachable test cluster. */
export interface TestPostgres {
  /** Host and port. */
  readonly host: string;
  readonly port: number;
  /** Superuser URL, without TLS. */
  readonly adminUrl: string;
  /** The cluster when this file started it, for tests that stop it. */
  readonly cluster: PgCluster | undefined;
}

async function connect(): Promise<TestPostgres | undefined> {
  const given = Deno.env.get("SPIKE_TEST_DATABASE_URL")?.trim();
  if (Deno.env.get("SPIKE_TEST_POSTGRES") === "unavailable") return undefined;
  let cluster: PgCluster | undefined;
  let adminUrl: string;
  if (given) {
    adminUrl = given;
  } else {
    try {
      cluster = await startPgCluster({ durable: false });
    } catch (e) {
      console.error(
        `\n!!! SKIPPING the PostgreSQL tests of this file: ${
          (e as Error).message
        }\n`,
      );
      return undefined;
    }
    globalThis.addEventListener("unload", () => cluster!.stopSync());
    adminUrl = cluster.adminUrl();
  }
  const url = new URL(adminUrl);
  const admin = adminSql(adminUrl);
  try {
    await admin.unsafe(`DO $$ BEGIN
      CREATE ROLE ${TEST_ROLE} LOGIN PASSWORD '${TEST_PASSWORD}';
      EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    try {
      await admin.unsafe(`CREATE DATABASE ${TEST_ROLE} OWNER ${TEST_ROLE}`);
    } catch (e) {
      if ((e as { code?: string }).code !== "42P04") throw e;
    }
  } finally {
    await admin.end();
  }
  return {
    host: url.hostname,
    port: Number(url.port),
    adminUrl,
    cluster,
  };
}

/** The test cluster, or undefined when PostgreSQL is unavailable here. */
export const pg: TestPostgres | undefined = await connect();

/**
 * A superuser client (for setup and for tampering in tests).
 *
 * @param url the URL, default the test cluster's admin URL
 * @returns the client
 */
export function adminSql(url = pg!.adminUrl): postgres.Sql {
  return postgres(url, {
    max: 2,
    onnotice: () => {},
    ssl: false,
    connection: { application_name: "spike-test-admin" },
  });
}

/** The superuser URL of the test database (where the schemas are). */
export function testAdminUrl(): string {
  const url = new URL(pg!.adminUrl);
  url.pathname = `/${TEST_ROLE}`;
  return url.href;
}

let counter = 0;

/**
 * A new, empty schema owned by the test role.
 *
 * @returns its name
 */
export async function freshSchema(): Promise<string> {
  const name = `t${Deno.pid}_${Date.now().toString(36)}_${++counter}`;
  const admin = adminSql(testAdminUrl());
  try {
    await admin.unsafe(`CREATE SCHEMA ${name} AUTHORIZATION ${TEST_ROLE}`);
  } finally {
    await admin.end();
  }
  return name;
}

/**
 * The connection settings of the test role in `schema`.
 *
 * @param schema the schema nexus works in
 * @param overrides other host, port or settings (a proxy in between)
 * @returns the settings
 */
export function testDatabase(
  schema: string,
  overrides: Partial<DatabaseSettings> = {},
): DatabaseSettings {
  return {
    host: pg!.host,
    port: pg!.port,
    user: TEST_ROLE,
    password: TEST_PASSWORD,
    database: TEST_ROLE,
    sslMode: "disable",
    caFile: undefined,
    clientCert: { kind: "none" },
    options: `-c search_path=${schema}`,
    connectTimeoutMs: 5_000,
    ...overrides,
  };
}

/**
 * `SPIKE_NEXUS_DATABASE_URL` for a nexus process of the test role.
 *
 * @param schema the schema nexus works in
 * @returns the URL
 */
export function testDatabaseUrl(schema: string): string {
  const options = encodeURIComponent(`-c search_path=${schema}`);
  return `postgres://${TEST_ROLE}:${TEST_PASSWORD}@${pg!.host}:${
    pg!.port
  }/${TEST_ROLE}?sslmode=disable&options=${options}`;
}

/**
 * Pool settings with short timeouts for tests.
 *
 * @param database where to connect
 * @param max pool size
 * @returns the settings
 */
export function testPool(database: DatabaseSettings, max = 4): PoolSettings {
  return {
    database,
    max,
    statementTimeoutMs: 10_000,
    idleInTransactionTimeoutMs: 3_000,
  };
}

/** Says loudly that a file's PostgreSQL tests are skipped. */
export function announceSkip(file: string): void {
  if (pg) return;
  console.error(
    `\n!!! ${file}: PostgreSQL is unavailable here, its tests are SKIPPED\n`,
  );
}
