// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Migration of a schema-1 store (tests/fixtures/schema1, written by the
// first release's nexus) to store format 2: on first unlock, in one
// transaction, keeping every version, deletion, time, policy and the
// cipher-API key; a failed or killed migration leaves the schema-1 store
// as it was. The fixture is unlocked with its recovery files, as an
// operator restore would.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openParts } from "../lib/crypto/aead.ts";
import { hkdf } from "../lib/crypto/kdf.ts";
import type { Logger } from "../lib/log.ts";
import { parseRecoveryText, type Shard } from "../lib/shard/mod.ts";
import { rebuildRootKey } from "../modes/nexus/lifecycle.ts";
import { parseHead } from "../modes/nexus/secrets/secret_head.ts";
import type { StoreMeta } from "../modes/nexus/store/backend.ts";
import { openKeyring } from "../modes/nexus/store/keyring.ts";
import { CountingKeys } from "../modes/nexus/store/key_manager.ts";
import { type NexusStore, openStore } from "../modes/nexus/store/open.ts";
import { RecordCipher } from "../modes/nexus/store/record_cipher.ts";
import { Cluster } from "../scripts/cluster.ts";
import { newStoreKeys, rejectsWith } from "./store_support.ts";

const FIXTURE = new URL("./fixtures/schema1/", import.meta.url).pathname;
const STORE_URL = new URL("../modes/nexus/store/open.ts", import.meta.url);
const LIFECYCLE_URL = new URL("../modes/nexus/lifecycle.ts", import.meta.url);
const SHARD_URL = new URL("../lib/shard/mod.ts", import.meta.url);

interface DumpedVersion {
  deleted: boolean;
  createdTime: string;
  deletedTime: string | null;
  values: Record<string, string>;
}
interface Manifest {
  api: {
    secrets: Record<string, { metadata: unknown }>;
    policies: Record<string, Record<string, unknown>>;
  };
  store: {
    secrets: Record<string, {
      revision: number;
      createdTime: string;
      updatedTime: string;
      maxVersions: number;
      versions: Record<string, DumpedVersion>;
    }>;
    policies: Record<string, Record<string, unknown>>;
  };
  deletedPolicies: string[];
  cipher: {
    plaintext: string;
    version: number;
    nonce: string;
    ciphertext: string;
  };
}

const manifest: Manifest = JSON.parse(
  await Deno.readTextFile(`${FIXTURE}manifest.json`),
);

async function recoveryShards(): Promise<Shard[]> {
  return await Promise.all([1, 2, 3].map(async (i) =>
    parseRecoveryText(
      await Deno.readFile(`${FIXTURE}recovery/spike.recovery.${i}.txt`),
    )
  ));
}

/** A copy of the fixture store in a fresh data folder. */
async function fixtureCopy(): Promise<
  { dir: string; dataDir: string; file: string } & AsyncDisposable
> {
  const dir = await Deno.makeTempDir();
  const dataDir = `${dir}/data`;
  await Deno.mkdir(dataDir, { mode: 0o700 });
  const file = `${dataDir}/spike.db`;
  await Deno.copyFile(`${FIXTURE}spike.db`, file);
  await Deno.chmod(file, 0o600);
  return {
    dir,
    dataDir,
    file,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

function recordingLog(lines: string[]): Logger {
  const record = (msg: string, fields?: Record<string, unknown>) =>
    lines.push(`${msg} ${JSON.stringify(fields ?? {})}`);
  return { debug: record, info: record, warn: record, error: record };
}

/** Opens the copy and unlocks it with the key the recovery files rebuild. */
async function unlockCopy(
  dataDir: string,
  log?: Logger,
): Promise<{ store: NexusStore; meta: StoreMeta }> {
  const store = await openStore({
    backend: "sqlite",
    dataDir,
    maxVersions: 10,
    log,
  });
  const meta = (await store.readMeta())!;
  const rebuilt = await rebuildRootKey(await recoveryShards(), meta, false);
  assert.ok(rebuilt, "the recovery files rebuild the fixture's key");
  try {
    await store.unlock(rebuilt.keys);
  } catch (e) {
    await store.close();
    throw e;
  } finally {
    rebuilt.key.fill(0);
  }
  return { store, meta };
}

function rows(file: string): Record<string, unknown[]> {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    const tables = (db.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
    ).all() as { name: string }[]).map((t) => t.name);
    return Object.fromEntries(
      tables.map((t) => [t, db.prepare(`SELECT * FROM ${t}`).all()]),
    );
  } finally {
    db.close();
  }
}

function exec(file: string, sql: string): void {
  const db = new DatabaseSync(file);
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

Deno.test("a schema-1 store migrates on its first unlock, keeping every version, deletion, time, policy and the cipher key", async () => {
  await using copy = await fixtureCopy();
  const lines: string[] = [];
  const { store, meta } = await unlockCopy(copy.dataDir, recordingLog(lines));
  try {
    assert.equal(meta.schemaVersion, 1);
    assert.equal((await store.readMeta())!.schemaVersion, 2);
    assert.ok(lines.some((l) => l.startsWith("Store migrated to format 2")));
    assert.ok(!lines.some((l) => /disagreed/.test(l)), lines.join("\n"));
    const tables = Object.keys(rows(copy.file));
    assert.ok(!tables.some((t) => t.startsWith("schema1_")), String(tables));

    // Every head as stored: times, deletions, max versions, versions kept.
    const keyring = await openKeyring(
      (await rebuildRootKey(await recoveryShards(), meta, false))!.keys
        .keyring,
      (await store.backend.readKeyring())!,
    );
    const records = new RecordCipher(new CountingKeys(keyring));
    const secrets = store.secrets;
    const dump = manifest.store.secrets;
    assert.deepEqual(
      (await secrets.list({ prefix: "", after: "", limit: undefined })).keys,
      Object.keys(dump).sort(),
    );
    for (const [path, expected] of Object.entries(dump)) {
      const row = (await store.backend.readSecret(path))!;
      assert.equal(row.revision, expected.revision, path);
      const head = parseHead(
        await records.open(row.head, {
          table: "secrets",
          key: path,
          n: row.revision,
        }),
        path,
      );
      const numbers = Object.keys(expected.versions).map(Number);
      assert.equal(head.lowest, numbers[0], path);
      assert.equal(head.createdTime, expected.createdTime, path);
      assert.equal(head.updatedTime, expected.updatedTime, path);
      assert.equal(head.maxVersions, expected.maxVersions, path);
      assert.deepEqual(
        head.versions,
        numbers.map((n) => ({
          createdTime: expected.versions[n]!.createdTime,
          deletedTime: expected.versions[n]!.deletedTime,
        })),
        path,
      );
      // What the first release answered, answered the same.
      const api = manifest.api.secrets[path]!.metadata;
      if (api === null) {
        await rejectsWith(secrets.metadata(path), "api_not_found");
      } else assert.deepEqual(await secrets.metadata(path), api, path);
      for (const n of numbers) {
        const v = expected.versions[n]!;
        if (v.deleted) {
          await rejectsWith(secrets.get(path, n), "api_not_found");
        } else {
          assert.deepEqual(
            await secrets.get(path, n),
            v.values,
            `${path} v${n}`,
          );
        }
      }
    }
    // Deleted versions kept their values: bring them back and read them.
    for (const [path, expected] of Object.entries(dump)) {
      for (const [n, v] of Object.entries(expected.versions)) {
        if (!v.deleted) continue;
        await secrets.undelete(path, [Number(n)]);
        assert.deepEqual(await secrets.get(path, Number(n)), v.values);
      }
    }

    // Policies: the same records, the deleted one still gone.
    const problems: string[] = [];
    const loaded = await store.policies.loadPolicies((name) =>
      problems.push(name)
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(
      loaded.map((p) => p.name),
      Object.keys(manifest.api.policies).sort(),
    );
    for (const [name, api] of Object.entries(manifest.api.policies)) {
      const p = (await store.policies.getPolicy(name))!;
      assert.equal(p.spiffeIdPattern, api.spiffeidPattern);
      assert.equal(p.pathPattern, api.pathPattern);
      assert.deepEqual(p.permissions, api.permissions);
      assert.equal(p.createdAt, api.createdAt);
      assert.equal(p.updatedAt, api.updatedAt);
    }
    for (const name of manifest.deletedPolicies) {
      assert.equal(await store.policies.getPolicy(name), undefined);
    }

    // A ciphertext the first release's cipher API made still decrypts.
    const plaintext = await openParts(
      store.cipherKey,
      Uint8Array.fromBase64(manifest.cipher.nonce),
      Uint8Array.fromBase64(manifest.cipher.ciphertext),
    );
    assert.equal(
      new TextDecoder().decode(plaintext),
      manifest.cipher.plaintext,
    );

    // Writes go on from the migrated numbers.
    assert.equal(await secrets.put("apps/db/creds", { pass: "four" }), 4);
    assert.equal(await secrets.put("team/ops/rotating", { n: "v7" }), 7);
    assert.deepEqual(await secrets.get("team/ops/rotating", 6), { n: "v6" });
  } finally {
    await store.close();
  }
  // Reopened: format 2 already, nothing to migrate, same data.
  const lines2: string[] = [];
  const again = await unlockCopy(copy.dataDir, recordingLog(lines2));
  try {
    assert.equal(again.meta.schemaVersion, 2);
    assert.ok(!lines2.some((l) => /Migrat/.test(l)));
    assert.deepEqual(await again.store.secrets.get("apps/db/creds"), {
      pass: "four",
    });
  } finally {
    await again.store.close();
  }
});

Deno.test("a schema-1 migration that fails leaves the store exactly as it was", async () => {
  await using copy = await fixtureCopy();
  // One version's value altered on disk: it does not decrypt.
  exec(
    copy.file,
    `UPDATE secret_versions SET data = substr(data, 1, 20) || x'00' || substr(data, 22)
     WHERE path = 'team/ops/rotating' AND version = 4`,
  );
  const before = rows(copy.file);
  await assert.rejects(unlockCopy(copy.dataDir), {
    name: "StoreError",
    message:
      /Cannot migrate the schema-1 store: secret_versions.data of "team\/ops\/rotating" version 4 does not decrypt/,
  });
  assert.deepEqual(rows(copy.file), before);
  // The same store, repaired from the fixture, migrates.
  await Deno.copyFile(`${FIXTURE}spike.db`, copy.file);
  const { store } = await unlockCopy(copy.dataDir);
  await store.close();
});

Deno.test("a schema-1 deleted flag that disagrees with the sealed deletion time migrates as sealed, with a warning", async () => {
  await using copy = await fixtureCopy();
  // The outside review's edit: version 2 shown live by its plaintext flag.
  exec(
    copy.file,
    "UPDATE secret_versions SET deleted = 0 WHERE path = 'apps/db/creds' AND version = 2",
  );
  const lines: string[] = [];
  const { store } = await unlockCopy(copy.dataDir, recordingLog(lines));
  try {
    await rejectsWith(store.secrets.get("apps/db/creds", 2), "api_not_found");
    assert.ok(
      lines.some((l) =>
        /apps\/db\/creds" version 2: the schema-1 deleted flag disagreed/.test(
          l,
        )
      ),
      lines.join("\n"),
    );
  } finally {
    await store.close();
  }
});

Deno.test("a schema-1 store that was never initialized opens as a new format-2 store", async () => {
  await using copy = await fixtureCopy();
  // What the first release left when it stopped before its keepers took
  // the shards: the schema, no meta, no rows.
  exec(
    copy.file,
    `DELETE FROM secret_versions; DELETE FROM secrets; DELETE FROM policies;
     DELETE FROM shard_commitments;
     UPDATE meta SET store_id = NULL, key_check = NULL, threshold = NULL,
       share_count = NULL`,
  );
  const store = await openStore({
    backend: "sqlite",
    dataDir: copy.dataDir,
    maxVersions: 10,
  });
  try {
    assert.equal(store.backend.schema1, undefined);
    assert.equal(await store.readMeta(), undefined);
    const keys = await newStoreKeys();
    await store.initMeta(keys.meta);
    await store.unlock(keys.keys);
    assert.equal((await store.readMeta())!.schemaVersion, 2);
    assert.equal(await store.secrets.put("p", { k: "v" }), 1);
  } finally {
    await store.close();
  }
});

// Adds `count` schema-1 paths of three versions each to a copy of the
// fixture, sealed as the first release sealed them, so a migration takes
// long enough to be killed half-way.
async function addSchema1Paths(file: string, count: number): Promise<void> {
  const meta = (await (await openStore({
    backend: "sqlite",
    dataDir: file.slice(0, file.lastIndexOf("/")),
    maxVersions: 10,
  })).readMeta())!;
  const shards = await recoveryShards();
  const rebuilt = (await rebuildRootKey(shards, meta, false))!;
  const raw = await hkdf(rebuilt.key, meta.storeId, "spike/v1/storage", 32);
  rebuilt.key.fill(0);
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, [
    "encrypt",
  ]);
  raw.fill(0);
  const seal = async (
    value: unknown,
    table: string,
    path: string,
    version: number | null,
    field: string,
  ) => {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(
      await crypto.subtle.encrypt(
        {
          name: "AES-GCM",
          iv,
          additionalData: new TextEncoder().encode(
            JSON.stringify(["spike/v1", table, path, version, field]),
          ),
        },
        key,
        new TextEncoder().encode(JSON.stringify(value)),
      ),
    );
    const out = new Uint8Array(12 + ct.length);
    out.set(iv);
    out.set(ct, 12);
    return out;
  };
  const now = new Date().toISOString();
  const sealed = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const path = `bulk/${String(i).padStart(5, "0")}`;
      return {
        path,
        head: await Promise.all([
          seal(now, "secrets", path, null, "createdTime"),
          seal(now, "secrets", path, null, "updatedTime"),
          seal(10, "secrets", path, null, "maxVersions"),
        ]),
        versions: await Promise.all([1, 2, 3].map((v) =>
          Promise.all([
            seal({ n: `${path}#${v}` }, "secret_versions", path, v, "data"),
            seal(now, "secret_versions", path, v, "createdTime"),
            seal(null, "secret_versions", path, v, "deletedTime"),
          ])
        )),
      };
    }),
  );
  const db = new DatabaseSync(file);
  try {
    db.exec("BEGIN");
    const head = db.prepare(
      "INSERT INTO secrets (path, revision, created_time, updated_time, max_versions) VALUES (?, 3, ?, ?, ?)",
    );
    const version = db.prepare(
      "INSERT INTO secret_versions (path, version, deleted, data, created_time, deleted_time) VALUES (?, ?, 0, ?, ?, ?)",
    );
    for (const s of sealed) {
      head.run(s.path, ...s.head);
      s.versions.forEach((v, i) => version.run(s.path, i + 1, ...v));
    }
    db.exec("COMMIT");
  } finally {
    db.close();
  }
}

Deno.test("a schema-1 migration killed half-way leaves the store intact, and the next unlock migrates it", async () => {
  await using copy = await fixtureCopy();
  const BULK = 3000;
  await addSchema1Paths(copy.file, BULK);
  const before = rows(copy.file);
  // A nexus-like process unlocks with the recovery files and is killed
  // once the migration has started.
  const script = `${copy.dir}/migrate.ts`;
  await Deno.writeTextFile(
    script,
    `import { openStore } from "${STORE_URL.href}";
import { rebuildRootKey } from "${LIFECYCLE_URL.href}";
import { parseRecoveryText } from "${SHARD_URL.href}";
const say = (msg: string, fields?: unknown) =>
  console.log(msg + " " + JSON.stringify(fields ?? {}));
const store = await openStore({
  backend: "sqlite",
  dataDir: ${JSON.stringify(copy.dataDir)},
  maxVersions: 10,
  log: { debug: say, info: say, warn: say, error: say },
});
const shards = await Promise.all([1, 2].map(async (i) =>
  parseRecoveryText(await Deno.readFile(${
      JSON.stringify(FIXTURE)
    } + "recovery/spike.recovery." + i + ".txt"))
));
const rebuilt = await rebuildRootKey(shards, (await store.readMeta())!, false);
await store.unlock(rebuilt!.keys);
say("unlocked");
`,
  );
  const repo = new URL("..", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-lock",
      `--config=${repo}deno.json`,
      `--allow-read=${copy.dir},${repo}`,
      `--allow-write=${copy.dir}`,
      script,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  // Killed once the first batch of paths is written in the transaction.
  while (!out.includes('Migrating the store {"paths":64,')) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  child.kill("SIGKILL");
  await reader.cancel();
  assert.equal((await child.status).signal, "SIGKILL");
  assert.ok(out.includes('Migrating the store {"paths":64,'), out);
  assert.ok(
    !out.includes("Store migrated"),
    `finished before the kill: ${out}`,
  );

  // Still schema 1, every row as before (the WAL frames of the unfinished
  // transaction are ignored).
  const db = new DatabaseSync(copy.file);
  try {
    assert.equal(
      (db.prepare("SELECT schema_version FROM meta").get() as {
        schema_version: number;
      }).schema_version,
      1,
    );
  } finally {
    db.close();
  }
  assert.deepEqual(rows(copy.file), before);
  const { store } = await unlockCopy(copy.dataDir);
  try {
    assert.equal((await store.readMeta())!.schemaVersion, 2);
    for (const i of [0, 1234, BULK - 1]) {
      const path = `bulk/${String(i).padStart(5, "0")}`;
      assert.deepEqual(await store.secrets.get(path), { n: `${path}#3` });
      assert.deepEqual(await store.secrets.get(path, 1), { n: `${path}#1` });
    }
    assert.deepEqual(await store.secrets.get("apps/db/creds"), {
      user: "admin",
      pass: "three",
      port: "5432",
    });
  } finally {
    await store.close();
  }
});

Deno.test({
  name:
    "nexus on the first release's store: restore from its recovery files migrates it and serves its secrets and ciphertexts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cluster = await Cluster.create({ logLevel: "WARN" });
    try {
      await Deno.mkdir(cluster.dataDir, { mode: 0o700 });
      await Deno.copyFile(`${FIXTURE}spike.db`, `${cluster.dataDir}/spike.db`);
      await Deno.chmod(`${cluster.dataDir}/spike.db`, 0o600);
      await cluster.start();
      // Empty keepers: nexus waits for an operator restore.
      for (const i of [1, 3]) {
        const res = await cluster.pilot("restore", ["operator", "restore"], {
          stdin: await Deno.readTextFile(
            `${FIXTURE}recovery/spike.recovery.${i}.txt`,
          ),
        });
        assert.equal(res.code, 0, res.stderr);
      }
      await cluster.waitUnlocked();
      const get = await cluster.pilot("superuser", [
        "secret",
        "get",
        "apps/db/creds",
        "-f",
        "json",
      ]);
      assert.equal(get.code, 0, get.stderr);
      assert.deepEqual(JSON.parse(get.stdout), {
        user: "admin",
        pass: "three",
        port: "5432",
      });
      const list = await cluster.pilot("superuser", [
        "secret",
        "list",
        "-f",
        "json",
      ]);
      assert.deepEqual(
        JSON.parse(list.stdout),
        Object.keys(manifest.store.secrets).sort(),
      );
      const decrypted = await cluster.call("superuser", "/v1/cipher/decrypt", {
        version: manifest.cipher.version,
        nonce: manifest.cipher.nonce,
        ciphertext: manifest.cipher.ciphertext,
      });
      assert.equal(decrypted.status, 200);
      assert.equal(
        new TextDecoder().decode(
          Uint8Array.fromBase64(decrypted.body!.plaintext as string),
        ),
        manifest.cipher.plaintext,
      );
      const policy = await cluster.call(
        "superuser",
        "/v1/acl/policy?action=get",
        {
          id: "ops team",
        },
      );
      assert.equal(policy.status, 200);
      assert.equal(
        policy.body!.createdAt,
        manifest.api.policies["ops team"]!.createdAt,
      );
      const log = await Deno.readTextFile(cluster.nexus!.logFile);
      assert.match(log, /Store migrated to format 2/);
    } finally {
      await cluster.close();
    }
  },
});
