// Copyright 2026 the SPIKE for Deno authors. MIT license.
// 100,000 secrets × 3 versions: opening, unlocking and listing decrypt
// nothing, so they work even when the bulk rows hold bytes that could never
// open; the real secrets among them stay readable and writable, and a
// bulk row read is an integrity error.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { derivePurposeKeys, keyCheckValue } from "../lib/crypto/kdf.ts";
import { openStore } from "../modes/nexus/store/open.ts";

const PATHS = 100_000;
const VERSIONS = 3;

Deno.test("store with 100,000 secrets × 3 versions opens and lists pages without decrypting", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const dataDir = `${dir}/data`;
    const storeId = crypto.getRandomValues(new Uint8Array(16));
    const keys = await derivePurposeKeys(
      crypto.getRandomValues(new Uint8Array(32)),
      storeId,
    );
    let store = await openStore({
      backend: "sqlite",
      dataDir,
      maxVersions: 10,
    });
    await store.initMeta({
      storeId,
      keyCheck: await keyCheckValue(keys),
      threshold: 0,
      shareCount: 0,
      commitments: [],
    });
    await store.unlock(keys);
    const real = ["tenant/7/svc-00007", "tenant/89/svc-99999"];
    for (const p of real) {
      for (let v = 1; v <= VERSIONS; v++) {
        await store.secrets.put(p, { pass: `${p}#${v}` });
      }
    }
    await store.close();

    // Bulk rows with bytes that never open, written directly: a head
    // (holding the third version) and two version rows per path.
    const junk = crypto.getRandomValues(new Uint8Array(120));
    const db = new DatabaseSync(`${dataDir}/spike.db`);
    try {
      db.exec("BEGIN");
      const head = db.prepare(
        "INSERT INTO secrets (path, revision, head) VALUES (?, 3, ?)",
      );
      const version = db.prepare(
        "INSERT INTO secret_versions (path, version, record) VALUES (?, ?, ?)",
      );
      for (let i = 0; i < PATHS; i++) {
        const path = `tenant/${i % 97}/svc-${String(i).padStart(5, "0")}`;
        if (real.includes(path)) continue;
        head.run(path, junk);
        for (let v = 1; v < VERSIONS; v++) version.run(path, v, junk);
      }
      db.exec("COMMIT");
      const n = db.prepare("SELECT COUNT(*) AS n FROM secret_versions").get();
      assert.equal(n?.n, PATHS * (VERSIONS - 1));
    } finally {
      db.close();
    }

    const started = performance.now();
    store = await openStore({ backend: "sqlite", dataDir, maxVersions: 10 });
    try {
      await store.unlock(keys);
      const ready = performance.now() - started;
      const firstPage = await store.secrets.list({
        prefix: "",
        after: "",
        limit: 100,
      });
      const paged = performance.now() - started - ready;
      assert.equal(firstPage.keys.length, 100);
      assert.equal(firstPage.next, firstPage.keys[99]);
      const { keys: paths } = await store.secrets.list({
        prefix: "",
        after: "",
        limit: undefined,
      });
      const listed = performance.now() - started - ready - paged;
      assert.equal(paths.length, PATHS);
      assert.deepEqual(paths.slice(0, 100), firstPage.keys);
      for (let i = 1; i < paths.length; i++) {
        assert.ok(paths[i - 1]! < paths[i]!, `not sorted at ${i}`);
      }
      for (const p of real) {
        assert.deepEqual(await store.secrets.get(p), { pass: `${p}#3` });
        assert.deepEqual(await store.secrets.get(p, 1), { pass: `${p}#1` });
        assert.equal(await store.secrets.put(p, { pass: "new" }), 4);
      }
      await assert.rejects(
        store.secrets.get("tenant/0/svc-00000"),
        { name: "IntegrityError", message: /head \(revision 3\)/ },
      );
      console.log(
        `open+unlock ${ready.toFixed(1)} ms, first page of 100 ${
          paged.toFixed(2)
        } ms, all ${PATHS} paths ${listed.toFixed(1)} ms`,
      );
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
