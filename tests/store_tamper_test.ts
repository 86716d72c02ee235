// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Tampering with a real spike.db, as an outside review did with sqlite3:
// every single-row edit that format 2 can see (a sealed byte flipped, a
// plaintext column changed, a version row deleted, duplicated or
// re-inserted, a head rolled back under newer versions, a deleted
// policy's row put back) is an integrity error naming no value, never
// another version's data; through nexus it is a 500 with
// state_integrity_check, an audit line and a warn log.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { PolicyEngine } from "../modes/nexus/policy/engine.ts";
import { type NexusStore, openStore } from "../modes/nexus/store/open.ts";
import { Cluster } from "../scripts/cluster.ts";
import { newStoreKeys, rejectsWith, type StoreKeys } from "./store_support.ts";

const INTEGRITY = "state_integrity_check";

interface Tampered extends AsyncDisposable {
  readonly file: string;
  readonly dataDir: string;
  readonly keys: StoreKeys;
  /** The store, open and unlocked. */
  store: NexusStore;
  /** Closes and reopens the store (a nexus restart). */
  restart(): Promise<NexusStore>;
}

async function sqliteStore(maxVersions = 10): Promise<Tampered> {
  const dir = await Deno.makeTempDir();
  const dataDir = `${dir}/data`;
  const keys = await newStoreKeys();
  const open = async () => {
    const store = await openStore({ backend: "sqlite", dataDir, maxVersions });
    if (!await store.readMeta()) await store.initMeta(keys.meta);
    await store.unlock(keys.keys);
    return store;
  };
  const t: Tampered = {
    file: `${dataDir}/spike.db`,
    dataDir,
    keys,
    store: await open(),
    async restart() {
      await t.store.close();
      t.store = await open();
      return t.store;
    },
    async [Symbol.asyncDispose]() {
      await t.store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
  return t;
}

// Edits the file as sqlite3 would, with the store still open (WAL mode:
// a second connection sees and changes committed data).
function sql<T = unknown>(
  file: string,
  statement: string,
  ...params: (string | number | Uint8Array)[]
): T[] {
  const db = new DatabaseSync(file);
  try {
    const stmt = db.prepare(statement);
    return /^\s*select/i.test(statement)
      ? stmt.all(...params) as T[]
      : (stmt.run(...params), []);
  } finally {
    db.close();
  }
}

async function integrityError(p: Promise<unknown>, ...values: string[]) {
  const e = await rejectsWith(p, INTEGRITY);
  for (const v of values) assert.ok(!e.message.includes(v), e.message);
  return e;
}

Deno.test("format 2 keeps no deletion flag in clear: the bytes that hold it are sealed", async () => {
  await using t = await sqliteStore();
  const s = t.store.secrets;
  await s.put("p", { k: "old-value" });
  await s.put("p", { k: "revoked-value" });
  await s.delete("p", [2]);
  const columns = (table: string) =>
    sql<{ name: string }>(
      t.file,
      `SELECT name FROM pragma_table_info('${table}')`,
    )
      .map((c) => c.name);
  assert.deepEqual(columns("secrets"), ["path", "revision", "head"]);
  assert.deepEqual(columns("secret_versions"), ["path", "version", "record"]);
  assert.deepEqual(columns("policies"), ["name", "record"]);
  // Flip each byte of the sealed head in turn: never served, never v1.
  const head = sql<{ head: Uint8Array }>(
    t.file,
    "SELECT head FROM secrets",
  )[0]!.head;
  for (const at of [0, 3, 10, 40, head.length - 1]) {
    const flipped = head.slice();
    flipped[at]! ^= 0x01;
    sql(t.file, "UPDATE secrets SET head = ?", flipped);
    await integrityError(s.get("p"), "old-value", "revoked-value");
    await integrityError(s.get("p", 2), "revoked-value");
  }
  sql(t.file, "UPDATE secrets SET head = ?", head);
  assert.deepEqual(await s.get("p"), { k: "old-value" });
  // The revision column the head is bound to.
  sql(t.file, "UPDATE secrets SET revision = revision + 1");
  await integrityError(s.get("p"));
  await integrityError(s.delete("p", [1]));
});

Deno.test("a deleted version row is an integrity error on every read of the path", async () => {
  await using t = await sqliteStore();
  const s = t.store.secrets;
  for (const v of ["one", "two", "three"]) await s.put("p", { k: v });
  await s.put("other", { k: "fine" });
  sql(t.file, "DELETE FROM secret_versions WHERE path = 'p' AND version = 1");
  const e = await integrityError(s.get("p"), "one", "two", "three");
  assert.match(e.message, /missing version rows/);
  await integrityError(s.get("p", 2));
  await integrityError(s.metadata("p"));
  await integrityError(s.put("p", { k: "four" }));
  assert.deepEqual(await s.get("other"), { k: "fine" });
  // The current version's row: the same.
  sql(t.file, "DELETE FROM secret_versions WHERE path = 'p'");
  await integrityError(s.get("p"));
});

Deno.test("a duplicated or re-inserted version row is an integrity error", async () => {
  await using t = await sqliteStore(3);
  const s = t.store.secrets;
  for (let i = 1; i <= 5; i++) await s.put("p", { k: `v${i}` });
  // Kept: 3 and 4 in rows, 5 in the head. Copy 3 as 6 (above the head).
  sql(
    t.file,
    "INSERT INTO secret_versions SELECT path, 6, record FROM secret_versions WHERE version = 3",
  );
  let e = await integrityError(s.get("p"), "v3", "v5");
  assert.match(e.message, /rolled back or a row was added/);
  await integrityError(s.get("p", 6));
  sql(t.file, "DELETE FROM secret_versions WHERE version = 6");
  assert.deepEqual(await s.get("p"), { k: "v5" });
  // A pruned version put back below the kept ones.
  sql(
    t.file,
    "INSERT INTO secret_versions SELECT path, 1, record FROM secret_versions WHERE version = 3",
  );
  e = await integrityError(s.get("p"), "v3");
  assert.match(e.message, /does not keep/);
  await integrityError(s.get("p", 1));
  sql(t.file, "DELETE FROM secret_versions WHERE version = 1");
  // Another path's row under this path.
  await s.put("q", { k: "q1" });
  await s.put("q", { k: "q2" });
  sql(
    t.file,
    "UPDATE secret_versions SET record = (SELECT record FROM secret_versions WHERE path = 'q') WHERE path = 'p' AND version = 4",
  );
  await integrityError(s.get("p", 4), "q1");
  assert.deepEqual(await s.get("p", 3), { k: "v3" });
});

Deno.test("a head rolled back under newer versions is an integrity error", async () => {
  await using t = await sqliteStore();
  const s = t.store.secrets;
  await s.put("p", { k: "first" });
  await s.put("p", { k: "second" });
  const [old] = sql<{ revision: number; head: Uint8Array }>(
    t.file,
    "SELECT revision, head FROM secrets WHERE path = 'p'",
  );
  await s.put("p", { k: "third" });
  await s.delete("p", [1]);
  // The older head, with its own revision: it opens, but the rows say
  // newer versions exist.
  sql(
    t.file,
    "UPDATE secrets SET revision = ?, head = ? WHERE path = 'p'",
    old!.revision,
    old!.head,
  );
  const e = await integrityError(s.get("p"), "first", "second", "third");
  assert.match(e.message, /rolled back/);
  await integrityError(s.get("p", 1), "first");
  await integrityError(s.metadata("p"));
  await integrityError(s.undelete("p", [1]));
});

Deno.test("a deleted policy's row put back is refused, also after a restart", async () => {
  await using t = await sqliteStore();
  const p = t.store.policies;
  const grant = {
    spiffeIdPattern: "spiffe://spike\\.ist/workload/app",
    pathPattern: "apps/.*",
    permissions: ["read", "write"],
  };
  await p.putPolicy({ name: "app", ...grant });
  await p.putPolicy({ name: "keep", ...grant, pathPattern: "keep/.*" });
  const [row] = sql<{ name: string; record: Uint8Array }>(
    t.file,
    "SELECT name, record FROM policies WHERE name = 'app'",
  );
  assert.equal(await p.deletePolicy("app"), true);
  sql(
    t.file,
    "INSERT INTO policies (name, record) VALUES (?, ?)",
    row!.name,
    row!.record,
  );
  const e = await integrityError(p.getPolicy("app"));
  assert.match(e.message, /does not name/);
  const page = { prefix: "", after: "", limit: undefined };
  assert.deepEqual((await p.listNames(page)).keys, ["keep"]);
  // After a restart the engine loads without it: it grants nothing.
  const restarted = await t.restart();
  const problems: string[] = [];
  const engine = new PolicyEngine();
  engine.load(
    await restarted.policies.loadPolicies((name, error) => {
      problems.push(name);
      assert.match(error.message, /does not name/);
    }),
  );
  assert.deepEqual(problems, ["app"]);
  assert.equal(
    engine.allows("spiffe://spike.ist/workload/app", "apps/db", ["read"]),
    false,
  );
  assert.equal(
    engine.allows("spiffe://spike.ist/workload/app", "keep/x", ["read"]),
    true,
  );
  // Creating the policy again replaces the stray row with a valid one.
  await restarted.policies.putPolicy({ name: "app", ...grant });
  assert.equal(
    (await restarted.policies.getPolicy("app"))!.pathPattern,
    "apps/.*",
  );
});

Deno.test("an older policy record or policy set put back is refused", async () => {
  await using t = await sqliteStore();
  const p = t.store.policies;
  const base = {
    spiffeIdPattern: "spiffe://spike\\.ist/workload/app",
    permissions: ["read"],
  };
  await p.putPolicy({ name: "app", ...base, pathPattern: "narrow/.*" });
  const [oldRecord] = sql<{ record: Uint8Array }>(
    t.file,
    "SELECT record FROM policies",
  );
  const [oldSet] = sql<{ generation: number; record: Uint8Array }>(
    t.file,
    "SELECT generation, record FROM policy_set",
  );
  await p.putPolicy({ name: "app", ...base, pathPattern: "wide/.*" });
  await p.putPolicy({ name: "later", ...base, pathPattern: "later/.*" });
  // The policy's older record (wider or narrower: either way not current).
  sql(
    t.file,
    "UPDATE policies SET record = ? WHERE name = 'app'",
    oldRecord!.record,
  );
  await integrityError(p.getPolicy("app"));
  const skipped: string[] = [];
  const loaded = await p.loadPolicies((name) => skipped.push(name));
  assert.deepEqual(loaded.map((r) => r.name), ["later"]);
  assert.deepEqual(skipped, ["app"]);
  // The whole set rolled back to generation 1: 'later' is no longer named.
  sql(
    t.file,
    "UPDATE policy_set SET generation = ?, record = ?",
    oldSet!.generation,
    oldSet!.record,
  );
  await integrityError(p.getPolicy("later"));
});

Deno.test("an altered keyring keeps the store locked with an integrity error", async () => {
  await using t = await sqliteStore();
  await t.store.secrets.put("p", { k: "v" });
  const keyring = sql<{ keyring: Uint8Array }>(
    t.file,
    "SELECT keyring FROM meta",
  )[0]!.keyring;
  const flipped = keyring.slice();
  flipped[20]! ^= 0x80;
  sql(t.file, "UPDATE meta SET keyring = ?", flipped);
  await t.store.close();
  const store = await openStore({
    backend: "sqlite",
    dataDir: t.dataDir,
    maxVersions: 10,
  });
  try {
    await rejectsWith(store.unlock(t.keys.keys), INTEGRITY);
    assert.equal(store.unlocked, false);
  } finally {
    await store.close();
  }
  sql(t.file, "UPDATE meta SET keyring = ?", keyring);
  t.store = await openStore({
    backend: "sqlite",
    dataDir: t.dataDir,
    maxVersions: 10,
  });
  await t.store.unlock(t.keys.keys);
  assert.deepEqual(await t.store.secrets.get("p"), { k: "v" });
});

Deno.test({
  name:
    "nexus answers a tampered store with 500 state_integrity_check, an audit line and a warn log, naming no value",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cluster = await Cluster.create({ logLevel: "WARN" });
    const app = "spiffe://spike.ist/workload/app";
    try {
      await cluster.issue("app", app);
      await cluster.start();
      await cluster.waitUnlocked();
      const su = (route: string, body: unknown) =>
        cluster.call("superuser", route, body);
      for (const v of ["alpha-value", "bravo-value"]) {
        assert.equal(
          (await su("/v1/store/secrets", {
            path: "apps/db",
            values: { pass: v },
          })).status,
          200,
        );
      }
      for (const name of ["app", "stays"]) {
        assert.equal(
          (await su("/v1/acl/policy", {
            name,
            spiffeidPattern: `^spiffe://spike\\.ist/workload/${name}$`,
            pathPattern: "apps/.*",
            permissions: ["read"],
          })).status,
          200,
        );
      }
      const file = `${cluster.dataDir}/spike.db`;
      const [policyRow] = sql<{ name: string; record: Uint8Array }>(
        file,
        "SELECT name, record FROM policies WHERE name = 'app'",
      );
      assert.equal(
        (await su("/v1/acl/policy?action=delete", { id: "app" })).status,
        200,
      );
      await cluster.stopNexus("SIGTERM");
      sql(file, "DELETE FROM secret_versions WHERE path = 'apps/db'");
      sql(
        file,
        "INSERT INTO policies (name, record) VALUES (?, ?)",
        policyRow!.name,
        policyRow!.record,
      );
      await cluster.startNexus();
      await cluster.waitUnlocked();

      const get = await su("/v1/store/secrets?action=get", {
        path: "apps/db",
        version: 1,
      });
      assert.equal(get.status, 500);
      assert.deepEqual(get.body, { err: INTEGRITY });
      const pilot = await cluster.pilot("superuser", [
        "secret",
        "get",
        "apps/db",
      ]);
      assert.notEqual(pilot.code, 0);
      assert.match(pilot.stderr, /stored data altered or damaged/);
      assert.doesNotMatch(pilot.stdout + pilot.stderr, /alpha|bravo/);
      // The re-inserted policy grants nothing after the restart.
      const denied = await cluster.call("app", "/v1/store/secrets?action=get", {
        path: "apps/db",
      });
      assert.equal(denied.status, 401);
      const log = await Deno.readTextFile(cluster.nexus!.logFile);
      assert.doesNotMatch(log, /alpha-value|bravo-value/);
      const lines = log.split("\n").filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l));
      const audit = lines.find((l) =>
        l.audit?.err === INTEGRITY && l.audit?.resource === "apps/db"
      );
      assert.ok(audit, "an audit line with the integrity error");
      assert.equal(audit.audit.status, 500);
      assert.ok(
        lines.some((l) =>
          l.level === "WARN" &&
          l.msg === "Stored data failed its integrity check" &&
          /apps\/db/.test(l.reason)
        ),
        "a warn log naming the path",
      );
      assert.ok(
        lines.some((l) =>
          l.level === "WARN" && l.policy === "app" &&
          /does not name.*grants nothing/.test(l.msg)
        ),
        "a warn log for the refused policy",
      );
      assert.ok(
        lines.some((l) =>
          l.audit?.action === "load-policies" && l.audit?.resource === "app" &&
          l.audit?.err === INTEGRITY
        ),
        "an audit line for the refused policy",
      );
    } finally {
      await cluster.close();
    }
  },
});
