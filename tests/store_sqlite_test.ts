// Copyright 2026 the SPIKE for Deno authors. MIT license.
// SQLite-specific store behaviour: persistence across reopen, rows really
// deleted, records bound to their row, file modes, schema versions, write
// failures and durability under kill -9. Tampering with a real file, and
// the migration from schema 1, have their own test files.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  derivePurposeKeys,
  keyCheckValue,
  type PurposeKeys,
} from "../lib/crypto/kdf.ts";
import { SecretService } from "../modes/nexus/secrets/secret_service.ts";
import { openKeyring } from "../modes/nexus/store/keyring.ts";
import { RecordCipher } from "../modes/nexus/store/record_cipher.ts";
import type { StoreMeta } from "../modes/nexus/store/backend.ts";
import { type NexusStore, openStore } from "../modes/nexus/store/open.ts";
import { rejectsWith } from "./store_support.ts";

const ALL = { prefix: "", after: "", limit: undefined };
const STORE_URL = new URL("../modes/nexus/store/open.ts", import.meta.url);
const KDF_URL = new URL("../lib/crypto/kdf.ts", import.meta.url);

interface Setup extends AsyncDisposable {
  dir: string;
  dataDir: string;
  file: string;
  root: Uint8Array<ArrayBuffer>;
  storeId: Uint8Array<ArrayBuffer>;
  keys: PurposeKeys;
  meta: StoreMeta;
}

async function setup(): Promise<Setup> {
  const dir = await Deno.makeTempDir();
  const dataDir = `${dir}/data`;
  const root = crypto.getRandomValues(new Uint8Array(32));
  const storeId = crypto.getRandomValues(new Uint8Array(16));
  const keys = await derivePurposeKeys(root, storeId);
  const meta: StoreMeta = {
    storeId,
    keyCheck: await keyCheckValue(keys),
    threshold: 2,
    shareCount: 3,
    commitments: [1, 2, 3].map((i) => new Uint8Array(32).fill(i)),
  };
  return {
    dir,
    dataDir,
    file: `${dataDir}/spike.db`,
    root,
    storeId,
    keys,
    meta,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function open(s: Setup, maxVersions = 10): Promise<NexusStore> {
  const store = await openStore({
    backend: "sqlite",
    dataDir: s.dataDir,
    maxVersions,
  });
  if (!await store.readMeta()) await store.initMeta(s.meta);
  await store.unlock(s.keys);
  return store;
}

function withDb<T>(file: string, fn: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(file);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function count(file: string, sql: string, ...params: string[]): number {
  return withDb(file, (db) => {
    const row = db.prepare(sql).get(...params) as { n: number };
    return row.n;
  });
}

function exists(file: string): boolean {
  try {
    Deno.statSync(file);
    return true;
  } catch {
    return false;
  }
}

function contains(haystack: Uint8Array, needle: string): boolean {
  return new TextDecoder("latin1").decode(haystack).includes(needle);
}

Deno.test("sqlite store reopens with secrets, policies and meta intact", async () => {
  await using s = await setup();
  const store = await open(s);
  await store.secrets.put("app/db", { user: "admin", pass: "hunter2" });
  await store.secrets.put("app/db", { user: "admin", pass: "hunter3" });
  await store.secrets.delete("app/db", [1]);
  const policy = await store.policies.putPolicy({
    name: "ops",
    spiffeIdPattern: "spiffe://example\\.org/ops",
    pathPattern: "app/.*",
    permissions: ["read"],
  });
  const metadata = await store.secrets.metadata("app/db");
  await store.close();

  const again = await openStore({
    backend: "sqlite",
    dataDir: s.dataDir,
    maxVersions: 10,
  });
  try {
    assert.deepEqual(await again.readMeta(), { ...s.meta, schemaVersion: 2 });
    await again.unlock(s.keys);
    assert.deepEqual(await again.secrets.get("app/db"), {
      user: "admin",
      pass: "hunter3",
    });
    await rejectsWith(again.secrets.get("app/db", 1), "api_not_found");
    assert.deepEqual(await again.secrets.metadata("app/db"), metadata);
    assert.deepEqual(await again.policies.getPolicy("ops"), policy);
    assert.deepEqual((await again.secrets.list(ALL)).keys, ["app/db"]);
    assert.equal(await again.secrets.put("app/db", { pass: "x" }), 3);
  } finally {
    await again.close();
  }
});

Deno.test("sqlite store closed cleanly leaves one file that opens without its WAL", async () => {
  await using s = await setup();
  const store = await open(s);
  await store.secrets.put("app/db", { pass: "kept" });
  await store.close();
  assert.ok(!exists(`${s.file}-wal`) && !exists(`${s.file}-shm`));
  // What a read-only volume allows: no shared-memory file can be made.
  const db = new DatabaseSync(s.file, { readOnly: true });
  try {
    assert.equal(
      db.prepare("PRAGMA journal_mode").get()?.journal_mode,
      "delete",
    );
    assert.equal(db.prepare("SELECT COUNT(*) AS n FROM secrets").get()?.n, 1);
  } finally {
    db.close();
  }
  const again = await open(s);
  try {
    assert.deepEqual(await again.secrets.get("app/db"), { pass: "kept" });
    withDb(
      s.file,
      (check) =>
        assert.equal(
          check.prepare("PRAGMA journal_mode").get()?.journal_mode,
          "wal",
        ),
    );
  } finally {
    await again.close();
  }
});

Deno.test("sqlite pruning removes the version rows from the file", async () => {
  await using s = await setup();
  const store = await open(s, 3);
  try {
    for (let i = 0; i < 7; i++) await store.secrets.put("p", { i: `${i}` });
    await store.secrets.put("other", { i: "x" });
  } finally {
    await store.close();
  }
  // Versions 5 to 7 are kept: 5 and 6 in rows, 7 in the head.
  const sql = "SELECT COUNT(*) AS n FROM secret_versions WHERE path = ?";
  assert.equal(count(s.file, sql, "p"), 2);
  assert.equal(count(s.file, sql, "other"), 0);
  assert.equal(
    count(
      s.file,
      "SELECT MIN(version) AS n FROM secret_versions WHERE path = ?",
      "p",
    ),
    5,
  );
});

Deno.test("sqlite file holds no secret value or policy pattern in clear", async () => {
  await using s = await setup();
  const store = await open(s);
  const value = "CorrectHorseBatteryStaple-7f3a";
  const valueKey = "very-private-key-name";
  const pattern = "spiffe://unusual-domain-q9z\\.example/workload";
  const pathPattern = "tenants/zebra-unicorn/.*";
  try {
    await store.secrets.put("s/1", { [valueKey]: value });
    await store.policies.putPolicy({
      name: "p1",
      spiffeIdPattern: pattern,
      pathPattern,
      permissions: ["read"],
    });
    // While open, recent writes live in the WAL file.
    const files = [s.file, `${s.file}-wal`];
    for (const f of files) {
      const bytes = await Deno.readFile(f);
      for (const secret of [value, valueKey, pattern, pathPattern, "zebra"]) {
        assert.ok(!contains(bytes, secret), `${secret} found in ${f}`);
      }
    }
    // The lookup keys are plaintext by design.
    assert.ok(contains(await Deno.readFile(`${s.file}-wal`), "s/1"));
  } finally {
    await store.close();
  }
  const bytes = await Deno.readFile(s.file);
  assert.ok(!contains(bytes, value));
  assert.ok(!contains(bytes, pattern));
});

Deno.test("sqlite records moved to another row do not open", async () => {
  await using s = await setup();
  const store = await open(s);
  try {
    await store.secrets.put("a", { k: "alpha" });
    await store.secrets.put("a", { k: "alpha-2" });
    await store.secrets.put("b", { k: "bravo" });
    await store.secrets.put("b", { k: "bravo-2" });
    await store.secrets.put("b", { k: "bravo-3" });
    await store.policies.putPolicy({
      name: "pol",
      spiffeIdPattern: "spiffe://x/y",
      pathPattern: "a",
      permissions: ["read"],
    });
    await store.policies.putPolicy({
      name: "other",
      spiffeIdPattern: "spiffe://x/z",
      pathPattern: "b",
      permissions: ["read"],
    });
    withDb(s.file, (db) => {
      // Another path's version into b v2; b v1 into a v1.
      db.exec(`UPDATE secret_versions SET record =
        (SELECT record FROM secret_versions WHERE path = 'a' AND version = 1)
        WHERE path = 'b' AND version = 2`);
      db.exec(`UPDATE secret_versions SET record =
        (SELECT record FROM secret_versions WHERE path = 'b' AND version = 1)
        WHERE path = 'a' AND version = 1`);
      // One policy's record into another's row.
      db.exec(`UPDATE policies SET record =
        (SELECT record FROM policies WHERE name = 'other') WHERE name = 'pol'`);
    });
    // One at a time: a second promise created up front would reject
    // unhandled while the first is awaited.
    for (const [path, version] of [["b", 2], ["a", 1]] as const) {
      const e = await rejectsWith(
        store.secrets.get(path, version),
        "state_integrity_check",
      );
      assert.match(e.message, /does not open/);
      assert.ok(!/alpha|bravo/.test(e.message));
    }
    // The heads were not touched: current versions still read.
    assert.deepEqual(await store.secrets.get("b"), { k: "bravo-3" });
    assert.deepEqual(await store.secrets.get("b", 1), { k: "bravo" });
    await rejectsWith(store.policies.getPolicy("pol"), "state_integrity_check");
    const skipped: string[] = [];
    const loaded = await store.policies.loadPolicies((name) =>
      skipped.push(name)
    );
    assert.deepEqual(loaded.map((p) => p.name), ["other"]);
    assert.deepEqual(skipped, ["pol"]);
  } finally {
    await store.close();
  }
});

Deno.test("sqlite version renumbered in place is an integrity error on every read", async () => {
  await using s = await setup();
  const store = await open(s);
  try {
    await store.secrets.put("p", { k: "one" });
    await store.secrets.put("p", { k: "two" });
    withDb(s.file, (db) => {
      // Renumber v1 as v3: the row set no longer matches the head.
      db.exec("UPDATE secret_versions SET version = 3 WHERE version = 1");
    });
    for (const v of [0, 1, 2]) {
      await rejectsWith(store.secrets.get("p", v), "state_integrity_check");
    }
    await rejectsWith(store.secrets.metadata("p"), "state_integrity_check");
    await rejectsWith(
      store.secrets.put("p", { k: "x" }),
      "state_integrity_check",
    );
  } finally {
    await store.close();
  }
});

Deno.test("sqlite store refuses a wrong key; no other key opens its records", async () => {
  await using s = await setup();
  const store = await open(s);
  try {
    await store.secrets.put("p", { k: "v" });
    await store.secrets.put("p", { k: "w" });
    const otherKeys = await derivePurposeKeys(
      crypto.getRandomValues(new Uint8Array(32)),
      s.storeId,
    );
    const other = await openStore({
      backend: "sqlite",
      dataDir: s.dataDir,
      maxVersions: 10,
    });
    try {
      await assert.rejects(other.unlock(otherKeys), {
        name: "StoreError",
        message: /does not belong/,
      });
      assert.equal(other.unlocked, false);
    } finally {
      await other.close();
    }
    // Bypassing the key check, another root key does not open the keyring.
    const keyring = (await store.backend.readKeyring())!;
    await rejectsWith(
      openKeyring(otherKeys.keyring, keyring),
      "state_integrity_check",
    );
    // The cipher-API key, as a data key, opens no record.
    const cipher = store.cipherKey;
    const asData = new SecretService(
      store.backend,
      new RecordCipher({
        sealKey: () => ({ term: 1, key: cipher }),
        openKey: () => cipher,
      }),
      { maxVersions: 10 },
    );
    await rejectsWith(asData.get("p"), "state_integrity_check");
    await rejectsWith(asData.get("p", 1), "state_integrity_check");
  } finally {
    await store.close();
  }
});

Deno.test("sqlite data dir is 0700 and database files are 0600", async () => {
  await using s = await setup();
  const previous = Deno.umask(0o000);
  let store: NexusStore | undefined;
  try {
    store = await open(s);
    await store.secrets.put("p", { k: "v" });
    const mode = (p: string) => Deno.statSync(p).mode! & 0o777;
    assert.equal(mode(s.dataDir), 0o700);
    for (const f of [s.file, `${s.file}-wal`, `${s.file}-shm`]) {
      assert.equal(mode(f), 0o600, f);
    }
    await store.close();
    store = undefined;
    // An existing looser directory and file are tightened on open.
    await Deno.chmod(s.dataDir, 0o755);
    await Deno.chmod(s.file, 0o644);
    store = await open(s);
    assert.equal(mode(s.dataDir), 0o700);
    assert.equal(mode(s.file), 0o600);
  } finally {
    Deno.umask(previous);
    await store?.close();
  }
});

Deno.test("sqlite store with a newer schema version is refused clearly", async () => {
  await using s = await setup();
  await (await open(s)).close();
  withDb(s.file, (db) => db.exec("UPDATE meta SET schema_version = 3"));
  await assert.rejects(
    openStore({ backend: "sqlite", dataDir: s.dataDir, maxVersions: 10 }),
    { name: "StoreError", message: /schema version 3, newer than this build/ },
  );
});

Deno.test("sqlite store refuses a file that is not a SPIKE store", async () => {
  await using s = await setup();
  await Deno.mkdir(s.dataDir);
  withDb(s.file, (db) => db.exec("CREATE TABLE other (x)"));
  await assert.rejects(
    openStore({ backend: "sqlite", dataDir: s.dataDir, maxVersions: 10 }),
    { name: "StoreError", message: /not a SPIKE store/ },
  );
  await Deno.writeTextFile(s.file, "this is not sqlite at all, just text....");
  await assert.rejects(
    openStore({ backend: "sqlite", dataDir: s.dataDir, maxVersions: 10 }),
    { name: "StoreError", message: /Cannot open/ },
  );
});

Deno.test("sqlite group commit isolates a failing write from its batch", async () => {
  await using s = await setup();
  const store = await open(s);
  try {
    const puts = Array.from(
      { length: 300 },
      (_, i) => store.secrets.put(`batch/${i}`, { i: `${i}` }),
    );
    const duplicateMeta = store.initMeta(s.meta);
    const results = await Promise.allSettled([...puts, duplicateMeta]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 300);
    const last = results[300]!;
    assert.equal(last.status, "rejected");
    assert.match(String(last.reason), /already initialized/);
    assert.equal((await store.secrets.list(ALL)).keys.length, 300);
    assert.deepEqual(await store.secrets.get("batch/299"), { i: "299" });
  } finally {
    await store.close();
  }
  assert.equal(count(s.file, "SELECT COUNT(*) AS n FROM secrets"), 300);
});

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// A child nexus-like process over the same store, with only the
// permissions it needs.
async function writeChildScript(s: Setup, body: string): Promise<string> {
  const script = `${s.dir}/child.ts`;
  await Deno.writeTextFile(
    script,
    `import { openStore } from "${STORE_URL.href}";
import { derivePurposeKeys } from "${KDF_URL.href}";
const fromHex = (h: string) => new Uint8Array(h.match(/../g)!.map((x) => parseInt(x, 16)));
const store = await openStore({ backend: "sqlite", dataDir: ${
      JSON.stringify(s.dataDir)
    }, maxVersions: 10 });
await store.unlock(await derivePurposeKeys(fromHex(Deno.args[0]!), fromHex(Deno.args[1]!)));
const say = (o: unknown) => console.log(JSON.stringify(o));
${body}
`,
  );
  return script;
}

function denoArgs(s: Setup, script: string): string[] {
  const repo = new URL("..", import.meta.url).pathname;
  return [
    "run",
    "--no-lock",
    // The script lives outside the repository: the store imports npm
    // packages by the repository's import map.
    `--config=${repo}deno.json`,
    `--allow-read=${s.dir},${repo}`,
    `--allow-write=${s.dir}`,
    script,
    hex(s.root),
    hex(s.storeId),
  ];
}

Deno.test("sqlite write failure (file size limit) leaves the store intact and readable", async () => {
  await using s = await setup();
  const store = await open(s);
  await store.secrets.put("keep", { k: "kept-value" });
  await store.close();
  const script = await writeChildScript(
    s,
    `const big = "x".repeat(512 * 1024);
try {
  await store.secrets.put("big", { k: big });
  say({ write: "ok" });
} catch (e) {
  say({ write: e.code, message: e.message });
}
say({ read: await store.secrets.get("keep") });
try {
  say({ small: await store.secrets.put("small", { k: "s" }) });
} catch (e) {
  say({ small: e.code });
}
await store.close();`,
  );
  // Writes past 256 KiB fail with EFBIG (the signal is ignored), as on a
  // full disk.
  const quoted = [Deno.execPath(), ...denoArgs(s, script)]
    .map((a) => `'${a}'`).join(" ");
  const out = await new Deno.Command("bash", {
    args: ["-c", `trap '' XFSZ; ulimit -f 256; exec ${quoted}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(lines[0].write, "store_write_failed", JSON.stringify(lines));
  assert.ok(!lines[0].message.includes("xxxx"));
  assert.deepEqual(lines[1], { read: { k: "kept-value" } });
  // A write that fits still succeeds after the failed one.
  assert.deepEqual(lines[2], { small: 1 });
  // Reopened without the limit: intact, consistent, and the write is absent.
  assert.equal(
    withDb(
      s.file,
      (db) =>
        (db.prepare("PRAGMA integrity_check").get() as Record<string, string>)
          .integrity_check,
    ),
    "ok",
  );
  const again = await open(s);
  try {
    assert.deepEqual((await again.secrets.list(ALL)).keys, ["keep", "small"]);
    assert.deepEqual(await again.secrets.get("keep"), { k: "kept-value" });
    assert.deepEqual(await again.secrets.get("small"), { k: "s" });
    assert.equal(await again.secrets.put("big", { k: "now it fits" }), 1);
  } finally {
    await again.close();
  }
});

Deno.test("sqlite acknowledged writes survive kill -9", async () => {
  await using s = await setup();
  await (await open(s)).close();
  const script = await writeChildScript(
    s,
    `for (let i = 1; ; i++) {
  await store.secrets.put("durable", { n: String(i) });
  say({ acked: i });
}`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: denoArgs(s, script),
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let acked = 0;
  let buffered = "";
  const decoder = new TextDecoder();
  const reader = child.stdout.getReader();
  while (acked < 25) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const l of lines) acked = Math.max(acked, JSON.parse(l).acked);
  }
  child.kill("SIGKILL");
  await reader.cancel();
  const status = await child.status;
  assert.equal(status.signal, "SIGKILL");
  assert.ok(acked >= 25, `only ${acked} writes acknowledged`);
  const store = await open(s);
  try {
    const current = (await store.secrets.metadata("durable")).metadata
      .currentVersion;
    assert.ok(current >= acked, `acked ${acked}, stored ${current}`);
    assert.deepEqual(await store.secrets.get("durable"), {
      n: String(current),
    });
  } finally {
    await store.close();
  }
});
