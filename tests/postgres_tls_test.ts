// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Nexus on a TLS-only PostgreSQL whose certificates an openssl-made PKI
// signs: libpq's sslmode values (verify-full by default, verify-ca,
// require, disable only when the URL says so) against the right and a
// wrong CA and host name; a client certificate from files that pg_hba's
// `cert` requires; nexus's own SVID mapped to its role by the CN (pg_ident),
// read again for every new connection, so a rotated SVID keeps working and
// an unmapped one is refused with a sentence. A setting that can never
// work stops nexus at once (exit 2) with one sentence naming it; no
// password of a URL ever reaches a log line or an error.
import assert from "node:assert/strict";
import { join } from "node:path";
import { readDatabaseSettings } from "../lib/config/database_url.ts";
import { Cluster, freePort } from "../scripts/cluster.ts";
import { issueSvidDir } from "../scripts/dev_ca.ts";
import {
  type PgCluster,
  PgUnavailableError,
  startPgCluster,
} from "../scripts/pg_cluster.ts";
import { ReplicaSet } from "../scripts/replicas.ts";
import { PostgresBackend } from "../modes/nexus/store/postgres_backend.ts";
import { waitFor } from "./reliability_support.ts";
import postgres from "postgres";

const NEXUS_ID = "spiffe://spike.ist/spike/nexus";
const NEXUS_CN = "spike-nexus.internal";
// Every password a URL here carries; none may show up anywhere.
const PASSWORD = "pw-owner-Zq8x41";
const PLAIN_PASSWORD = "pw-plain-Kd03vv";
const WRONG_PASSWORD = "pw-wrong-Ub77tm";
// Nothing listens there: nexus processes that only show their database
// connection stay locked instead of pushing shards to the test keepers.
const NO_KEEPERS = "https://127.0.0.1:9,https://127.0.0.1:10";

async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd: dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

// A CA, and leaves it signs, with the openssl command line.
async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-subj",
    `/CN=SPIKE test ${name}`,
  ]);
}

async function makeLeaf(
  dir: string,
  ca: string,
  name: string,
  subject: string,
  extensions: string,
): Promise<void> {
  await openssl(dir, [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    subject,
  ]);
  await Deno.writeTextFile(join(dir, `${name}.ext`), extensions);
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.crt`,
    "-CAkey",
    `${ca}.key`,
    "-set_serial",
    `0x${crypto.getRandomValues(new Uint8Array(8)).toHex()}`,
    "-days",
    "2",
    "-out",
    `${name}.crt`,
    "-extfile",
    `${name}.ext`,
  ]);
}

interface Setup {
  readonly pg: PgCluster;
  readonly cluster: Cluster;
  readonly pki: string;
  readonly admin: postgres.Sql;
}

async function setUp(): Promise<Setup | undefined> {
  try {
    await new Deno.Command("openssl", { args: ["version"], stdout: "null" })
      .output();
  } catch {
    console.error(
      "\n!!! postgres_tls_test.ts SKIPPED: no openssl command line here\n",
    );
    return undefined;
  }
  const pki = await Deno.makeTempDir({ prefix: "spike-pg-pki-" });
  await makeCa(pki, "db-ca");
  await makeCa(pki, "other-ca");
  await makeCa(pki, "client-ca");
  // The server certificate names 127.0.0.1 only; the server listens on
  // 127.0.0.2 too, a host name the certificate does not hold.
  await makeLeaf(
    pki,
    "db-ca",
    "server",
    "/CN=db.spike.test",
    "subjectAltName=IP:127.0.0.1,DNS:db.spike.test\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
  );
  await makeLeaf(
    pki,
    "client-ca",
    "client",
    "/CN=spike_certfile",
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
  );
  const cluster = await Cluster.create({ keepers: 2, threshold: 2 });
  // Nexus's SVID carries a DNS name, which is its subject CN.
  await issueSvidDir(cluster.ca, NEXUS_ID, cluster.svidDir("nexus"), {
    dnsNames: [NEXUS_CN],
  });
  const read = (name: string) => Deno.readTextFile(join(pki, name));
  let pg: PgCluster;
  try {
    pg = await startPgCluster({
      durable: false,
      tls: {
        certPem: await read("server.crt"),
        keyPem: await read("server.key"),
        // The files' client CA and the SPIFFE trust bundle.
        clientCaPem: (await read("client-ca.crt")) +
          cluster.ca.cert.toString("pem") + "\n",
      },
      settings: { "listen_addresses": "'127.0.0.1,127.0.0.2'" },
      hba: [
        "hostssl all spike_certfile 127.0.0.1/32 cert",
        "hostssl all spike_svid 127.0.0.1/32 cert map=spike",
        "hostnossl all spike_plain 127.0.0.1/32 scram-sha-256",
      ],
      ident: [`spike ${NEXUS_CN} spike_svid`],
    });
  } catch (e) {
    await cluster.close();
    await Deno.remove(pki, { recursive: true });
    if (!(e instanceof PgUnavailableError)) throw e;
    console.error(`\n!!! postgres_tls_test.ts SKIPPED: ${e.message}\n`);
    return undefined;
  }
  await pg.psql(`
    CREATE ROLE spike_pw LOGIN PASSWORD '${PASSWORD}';
    CREATE ROLE spike_plain LOGIN PASSWORD '${PLAIN_PASSWORD}';
    CREATE ROLE spike_certfile LOGIN;
    CREATE ROLE spike_svid LOGIN;`);
  await pg.psql("CREATE DATABASE spike");
  await pg.psql(
    ["spike_pw", "spike_plain", "spike_certfile", "spike_svid"]
      .map((role) => `CREATE SCHEMA ${role} AUTHORIZATION ${role};`).join(""),
    "spike",
  );
  const admin = postgres(pg.adminUrl("spike"), {
    max: 1,
    onnotice: () => {},
    ssl: false,
  });
  return { pg, cluster, pki, admin };
}

let setup: Setup | undefined;

function url(
  role: string,
  password: string | undefined,
  query: string,
  host = "127.0.0.1",
): string {
  const who = password === undefined ? role : `${role}:${password}`;
  const options = encodeURIComponent(`-c search_path=${role}`);
  return `postgres://${who}@${host}:${setup!.pg.port}/spike?options=${options}${
    query === "" ? "" : `&${query}`
  }`;
}

// What PostgreSQL reports of the TLS of a role's sessions from nexus.
async function sessions(role: string) {
  return await setup!.admin.unsafe(
    `SELECT s.ssl, s.client_dn, s.client_serial::text AS serial
     FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
     WHERE a.application_name = 'spike-nexus' AND a.usename = $1`,
    [role],
  );
}

// Opens the backend in-process with nexus's settings parser.
async function openWith(vars: Record<string, string>) {
  const database = readDatabaseSettings((name) => vars[name]);
  return await PostgresBackend.open({
    database,
    max: 1,
    statementTimeoutMs: 5_000,
    idleInTransactionTimeoutMs: 2_000,
  });
}

async function sslOfOwnSession(backend: PostgresBackend): Promise<boolean> {
  const [row] = await backend.sql`
    SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`;
  return row!.ssl as boolean;
}

const ca = (name: string) => join(setup!.pki, `${name}.crt`);

// Starts a nexus that must refuse to start; its exit code and output.
async function refusedStart(env: Record<string, string>) {
  const proc = setup!.cluster.spawn("nexus", {
    ...nexusEnv(),
    ...env,
  });
  const { code } = await proc.status;
  return { code, output: await Deno.readTextFile(proc.logFile) };
}

function nexusEnv(): Record<string, string> {
  const env = setup!.cluster.nexusEnv();
  delete env.SPIKE_NEXUS_DATA_DIR;
  return {
    ...env,
    SPIKE_NEXUS_BACKEND_STORE: "postgres",
    SPIKE_NEXUS_TLS_PORT: `127.0.0.1:${freePort()}`,
    SPIKE_NEXUS_KEEPER_PEERS: NO_KEEPERS,
  };
}

function assertOneSentence(output: string, pattern: RegExp): void {
  assert.match(output, pattern);
  assert.doesNotMatch(output, /^\s+at /m, "no stack trace");
}

async function sslModes() {
  const vars = (role: string, query: string, host?: string) => ({
    SPIKE_NEXUS_DATABASE_URL: url(
      role,
      role === "spike_plain" ? PLAIN_PASSWORD : PASSWORD,
      query,
      host,
    ),
  });
  // The default is verify-full: right CA and host name.
  const full = await openWith({
    ...vars("spike_pw", ""),
    SPIKE_NEXUS_DATABASE_CA: ca("db-ca"),
  });
  try {
    assert.equal(full.settings.database.sslMode, "verify-full");
    assert.equal(await sslOfOwnSession(full), true);
  } finally {
    await full.close();
  }
  // verify-ca: the chain only, so a host the certificate lacks is fine.
  const chainOnly = await openWith({
    ...vars("spike_pw", "sslmode=verify-ca", "127.0.0.2"),
    SPIKE_NEXUS_DATABASE_CA: ca("db-ca"),
  });
  try {
    assert.equal(await sslOfOwnSession(chainOnly), true);
  } finally {
    await chainOnly.close();
  }
  // require: encrypted, the server unverified when no CA is given ...
  const encrypted = await openWith(vars("spike_pw", "sslmode=require"));
  try {
    assert.equal(await sslOfOwnSession(encrypted), true);
  } finally {
    await encrypted.close();
  }
  // ... and checked against a CA that is given, as libpq does.
  await assert.rejects(
    openWith({
      ...vars("spike_pw", "sslmode=require"),
      SPIKE_NEXUS_DATABASE_CA: ca("other-ca"),
    }),
    {
      name: "ConfigError",
      message: /does not verify against the CA of SPIKE_NEXUS_DATABASE_CA/,
    },
  );
  // disable, said in the URL: plaintext, where pg_hba allows it.
  const plain = await openWith(vars("spike_plain", "sslmode=disable"));
  try {
    assert.equal(await sslOfOwnSession(plain), false);
  } finally {
    await plain.close();
  }
  // A role pg_hba wants on TLS only is refused in plaintext, with the
  // server's reason.
  await assert.rejects(
    openWith(vars("spike_pw", "sslmode=disable")),
    (e: Error) => {
      assert.equal(e.name, "ConfigError");
      assert.match(e.message, /refused the login of role "spike_pw"/);
      assert.match(e.message, /no encryption/);
      assert.ok(!e.message.includes(PASSWORD));
      return true;
    },
  );
  // A wrong password: the role and URL named, the password nowhere.
  await assert.rejects(
    openWith({
      SPIKE_NEXUS_DATABASE_URL: url("spike_pw", WRONG_PASSWORD, ""),
      SPIKE_NEXUS_DATABASE_CA: ca("db-ca"),
    }),
    (e: Error) => {
      assert.match(e.message, /password authentication failed/);
      assert.match(e.message, /SPIKE_NEXUS_DATABASE_URL/);
      assert.ok(!e.message.includes(WRONG_PASSWORD));
      return true;
    },
  );
}

async function refusedStarts() {
  const [wrongCa, wrongHost, wrongPassword, noClientCert] = await Promise
    .all([
      refusedStart({
        SPIKE_NEXUS_DATABASE_URL: url("spike_pw", PASSWORD, ""),
        SPIKE_NEXUS_DATABASE_CA: ca("other-ca"),
      }),
      refusedStart({
        SPIKE_NEXUS_DATABASE_URL: url("spike_pw", PASSWORD, "", "127.0.0.2"),
        SPIKE_NEXUS_DATABASE_CA: ca("db-ca"),
      }),
      refusedStart({
        SPIKE_NEXUS_DATABASE_URL: url("spike_pw", WRONG_PASSWORD, ""),
        SPIKE_NEXUS_DATABASE_CA: ca("db-ca"),
      }),
      refusedStart({
        SPIKE_NEXUS_DATABASE_URL: url("spike_certfile", undefined, ""),
        SPIKE_NEXUS_DATABASE_CA: ca("db-ca"),
      }),
    ]);
  for (const run of [wrongCa, wrongHost, wrongPassword, noClientCert]) {
    assert.equal(run.code, 2, run.output);
    for (const pw of [PASSWORD, WRONG_PASSWORD]) {
      assert.ok(!run.output.includes(pw), "a password in the output");
    }
  }
  assertOneSentence(
    wrongCa.output,
    /Cannot open the database postgres:\/\/spike_pw@127\.0\.0\.1:\d+\/spike: The database server's certificate at 127\.0\.0\.1:\d+ does not verify against the CA of SPIKE_NEXUS_DATABASE_CA/,
  );
  assertOneSentence(
    wrongHost.output,
    /certificate does not name 127\.0\.0\.2, the host in SPIKE_NEXUS_DATABASE_URL \(sslmode=verify-full checks it\)/,
  );
  assertOneSentence(
    wrongPassword.output,
    /refused the login of role "spike_pw" \(password authentication failed for user "spike_pw"\): check the role and password in SPIKE_NEXUS_DATABASE_URL/,
  );
  assertOneSentence(
    noClientCert.output,
    /refused the login of role "spike_certfile" \(.*certificate.*\): check the role and password in SPIKE_NEXUS_DATABASE_URL, or give a client certificate \(SPIKE_NEXUS_DATABASE_CLIENT_CERT\)/,
  );
}

async function clientCertificateFiles() {
  const set = new ReplicaSet(
    setup!.cluster,
    1,
    url("spike_certfile", undefined, "sslmode=verify-full"),
    {
      SPIKE_NEXUS_DATABASE_CA: ca("db-ca"),
      SPIKE_NEXUS_DATABASE_CLIENT_CERT: join(setup!.pki, "client.crt"),
      SPIKE_NEXUS_DATABASE_CLIENT_KEY: join(setup!.pki, "client.key"),
      SPIKE_NEXUS_KEEPER_PEERS: NO_KEEPERS,
    },
  );
  try {
    await set.start(1);
    // Locked (no keepers), but in the database: its row, on TLS, with
    // the certificate.
    await waitFor("the replica's row", async () => {
      const status = await set.call(1, "superuser", "/v1/operator/status");
      return (status.body?.replicas as unknown[] | null)?.length === 1;
    });
    const rows = await sessions("spike_certfile");
    assert.ok(rows.length > 0);
    for (const row of rows) {
      assert.equal(row.ssl, true);
      assert.match(row.client_dn as string, /CN=spike_certfile/);
    }
  } finally {
    await set.close();
  }
}

async function svidLogin() {
  const { cluster } = setup!;
  const set = new ReplicaSet(
    cluster,
    1,
    url("spike_svid", undefined, ""),
    {
      SPIKE_NEXUS_DATABASE_CA: ca("db-ca"),
      SPIKE_NEXUS_DATABASE_CLIENT_CERT: "svid",
      SPIKE_NEXUS_POLICY_CHECK_INTERVAL: "500ms",
    },
  );
  const issue = (serial: string, cn: string) =>
    issueSvidDir(cluster.ca, NEXUS_ID, cluster.svidDir("nexus"), {
      dnsNames: [cn],
      serialNumber: serial,
    });
  const read = (path: string) =>
    set.call(1, "superuser", "/v1/store/secrets?action=get", { path });
  const put = (path: string) =>
    set.call(1, "superuser", "/v1/store/secrets", {
      path,
      values: { k: path },
    });
  // Ends nexus's sessions: its next ones are new connections.
  const reconnect = () =>
    setup!.admin.unsafe(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE usename = 'spike_svid'`,
    );
  try {
    await issue("1001", NEXUS_CN);
    for (let i = 1; i <= 2; i++) await cluster.startKeeper(i);
    await set.start(1);
    await set.waitUnlocked(1);
    assert.equal((await put("tls/a")).status, 200);
    for (const row of await sessions("spike_svid")) {
      assert.equal(row.ssl, true);
      assert.match(row.client_dn as string, /CN=spike-nexus\.internal/);
      assert.equal(row.serial, String(0x1001));
    }

    // Rotated (new key, same CN): new connections present it.
    await issue("1002", NEXUS_CN);
    await waitFor(
      "sessions with the rotated SVID",
      async () => {
        await reconnect();
        await waitFor(
          "a new session",
          async () => (await read("tls/a")).status === 200,
        );
        const rows = await sessions("spike_svid");
        return rows.length > 0 &&
          rows.every((r) => r.serial === String(0x1002));
      },
      30_000,
      500,
    );
    // Right after its sessions ended, a replica may answer 503 until it
    // has confirmed its policies again (a retrying client's case).
    await waitFor("a write", async () => (await put("tls/b")).status === 200);
    assert.deepEqual((await read("tls/a")).body?.data, { k: "tls/a" });

    // An SVID whose CN pg_ident does not map: refused, and said so.
    await issue("1003", "workload.internal");
    // Each try ends the sessions and reads: a new connection has to log in
    // with the unmapped SVID, and the log (presence's warning, the refused
    // request) says why.
    await waitFor(
      "the unmapped SVID to be refused, and why",
      async () => {
        await reconnect();
        if ((await read("tls/a")).status !== 503) return false;
        return (await Deno.readTextFile(set.running.get(1)!.logFile))
          .includes('The database refused the login of role \\"spike_svid\\"');
      },
      30_000,
      500,
    );
    // At the default level too: presence warns with the reason, or with
    // the new one when the first was the ended session.
    await waitFor(
      "a warning with the reason",
      async () =>
        (await Deno.readTextFile(set.running.get(1)!.logFile)).split("\n")
          .some((line) =>
            line.includes('"level":"WARN"') &&
            line.includes('refused the login of role \\"spike_svid\\"')
          ),
    );
    const status = await set.call(1, "superuser", "/v1/operator/status");
    assert.equal(status.body?.state, "unlocked", "it keeps its key");

    // Mapped again: it serves again by itself.
    await issue("1004", NEXUS_CN);
    await waitFor(
      "reads with the mapped SVID",
      async () => {
        const got = await read("tls/b");
        return got.status === 200 &&
          (got.body?.data as Record<string, string>).k === "tls/b";
      },
      30_000,
    );
  } finally {
    await set.close();
  }
}

async function noPasswordLogged() {
  // Every process of the test logged into this folder.
  for await (const entry of Deno.readDir(`${setup!.cluster.dir}/logs`)) {
    const log = await Deno.readTextFile(
      `${setup!.cluster.dir}/logs/${entry.name}`,
    );
    for (const pw of [PASSWORD, PLAIN_PASSWORD, WRONG_PASSWORD]) {
      assert.ok(!log.includes(pw), `${entry.name} holds a password`);
    }
  }
}

Deno.test({
  name: "PostgreSQL over TLS",
  ignore: Deno.env.get("SPIKE_TEST_POSTGRES") === "unavailable",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    setup = await setUp();
    if (!setup) return;
    try {
      await t.step(
        "sslmode: verify-full by default, verify-ca skips the host name, require checks a CA only when given, disable only when the URL says so",
        sslModes,
      );
      await t.step(
        "a wrong CA, a host name the certificate lacks, a wrong password or a missing client certificate stop nexus with one sentence, exit 2",
        refusedStarts,
      );
      await t.step(
        "a client certificate from files, which pg_hba's cert method requires, is presented and accepted",
        clientCertificateFiles,
      );
      await t.step(
        "nexus logs in with its SVID (CN mapped to the role), keeps doing so with a rotated SVID, and says why an unmapped one is refused",
        svidLogin,
      );
      await t.step(
        "no password of a database URL reaches any log line",
        noPasswordLogged,
      );
    } finally {
      await setup.admin.end();
      await setup.cluster.close();
      await setup.pg.stop();
      await Deno.remove(setup.pki, { recursive: true });
    }
  },
});
