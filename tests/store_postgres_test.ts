// Copyright 2026 the SPIKE for Deno authors. MIT license.
// What only the PostgreSQL backend does: writes whose connection breaks
// mid-commit are settled without a duplicate version, two stores (two
// replicas) writing one path keep versions contiguous, the schema is made
// once and a newer one is refused, a pending store is invisible, and the
// database never holds a plaintext value.
import assert from "node:assert/strict";
import { openStore } from "../modes/nexus/store/open.ts";
import { PostgresBackend } from "../modes/nexus/store/postgres_backend.ts";
import { TcpProxy } from "../scripts/tcp_proxy.ts";
import { newStoreKeys } from "./store_support.ts";
import {
  adminSql,
  announceSkip,
  freshSchema,
  pg,
  testAdminUrl,
  testDatabase,
  testPool,
} from "./pg_support.ts";

announceSkip("store_postgres_test.ts");

const opts = { ignore: !pg, sanitizeResources: false, sanitizeOps: false };

async function unlockedStore(schema: string, port?: number) {
  const store = await openStore({
    backend: "postgres",
    postgres: testPool(
      testDatabase(schema, port === undefined ? {} : { port }),
    ),
    maxVersions: 100,
  });
  return store;
}

Deno.test({
  ...opts,
  name:
    "a write whose connection breaks before or after its commit is stored exactly once",
  async fn() {
    const schema = await freshSchema();
    const proxy = TcpProxy.start({ hostname: pg!.host, port: pg!.port });
    const keys = await newStoreKeys();
    const store = await unlockedStore(schema, proxy.port);
    const backend = store.backend as PostgresBackend;
    const admin = adminSql(testAdminUrl());
    const head = (tag: string) => new TextEncoder().encode(`head-${tag}`);
    // What a write sends carries its head as hex: the proxy finds it.
    const hex = (b: Uint8Array) => b.toHex();
    const revisionOf = async (path: string) =>
      (await admin.unsafe(
        `SELECT revision FROM ${schema}.spike_secrets WHERE path = $1`,
        [path],
      ))[0]?.revision;
    try {
      await store.initMeta(keys.meta);
      // Committed, answer lost: settled as done.
      proxy.cutOnce(hex(head("a1")), "after");
      assert.deepEqual(
        await backend.writeSecret("a", 0, { head: head("a1") }),
        { ok: true, revision: 1 },
      );
      assert.equal(Number(await revisionOf("a")), 1);
      // Never arrived: fenced out and reported as a conflict, which the
      // services answer by reading again and retrying.
      proxy.cutOnce(hex(head("a2")), "before");
      assert.deepEqual(
        await backend.writeSecret("a", 1, { head: head("a2") }),
        { ok: false, conflict: true },
      );
      assert.equal(Number(await revisionOf("a")), 1);
      assert.deepEqual(
        await backend.writeSecret("a", 1, { head: head("a3") }),
        { ok: true, revision: 2 },
      );
      // A policy write whose answer is lost.
      proxy.cutOnce(hex(head("set1")), "after");
      assert.deepEqual(
        await backend.writePolicy(0, head("set1"), { name: "p" }),
        { ok: true, revision: 1 },
      );
      // A fenced write that reaches the server late changes nothing.
      const late = new Uint8Array(16).fill(7);
      await admin.unsafe(
        `INSERT INTO ${schema}.spike_write_fence (write_id) VALUES ($1)`,
        [late],
      );
      await assert.rejects(
        admin.begin(async (tx) => {
          await tx.unsafe(`SET LOCAL search_path = ${schema}`);
          await tx.unsafe(
            "SELECT spike_write_secret($1, 'a', 2, '\\x00', 0, NULL, 0)",
            [late],
          );
        }),
        { code: "23505" },
      );
      assert.equal(Number(await revisionOf("a")), 2);
    } finally {
      await admin.end();
      await store.close();
      proxy.close();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "two replicas' stores writing the same paths at once keep versions contiguous and unique",
  async fn() {
    const schema = await freshSchema();
    const keys = await newStoreKeys();
    const a = await unlockedStore(schema);
    const b = await unlockedStore(schema);
    try {
      await a.initMeta(keys.meta);
      await a.unlock(keys.keys);
      await b.unlock(keys.keys);
      const writes = Array.from(
        { length: 40 },
        (_, i) => (i % 2 ? a : b).secrets.put(`hot/${i % 4}`, { i: `${i}` }),
      );
      const versions = await Promise.all(writes);
      for (let p = 0; p < 4; p++) {
        const mine = versions.filter((_, i) => i % 4 === p).sort((x, y) =>
          x - y
        );
        assert.deepEqual(mine, Array.from({ length: 10 }, (_, k) => k + 1));
        const meta = await b.secrets.metadata(`hot/${p}`);
        assert.equal(Object.keys(meta.versions).length, 10);
      }
      // Values went in sealed: no plaintext in any row.
      const admin = adminSql(testAdminUrl());
      try {
        const dump = await admin.unsafe(
          `SELECT encode(head, 'escape') AS t FROM ${schema}.spike_secrets
           UNION ALL SELECT encode(record, 'escape')
           FROM ${schema}.spike_secret_versions`,
        );
        assert.ok(dump.length > 0);
        for (const row of dump) {
          assert.ok(!/"i"/.test(row.t as string), "a value in plaintext");
        }
      } finally {
        await admin.end();
      }
    } finally {
      await a.close();
      await b.close();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "the schema is created once by replicas opening together, and a newer schema is refused",
  async fn() {
    const schema = await freshSchema();
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => unlockedStore(schema)),
    );
    for (const s of stores) await s.close();
    const admin = adminSql(testAdminUrl());
    try {
      await admin.unsafe(
        `UPDATE ${schema}.spike_meta SET schema_version = 3`,
      );
    } finally {
      await admin.end();
    }
    await assert.rejects(unlockedStore(schema), {
      name: "StoreError",
      message: /schema version 3, newer than this build supports/,
    });
  },
});

Deno.test({
  ...opts,
  name: "a pending store is no store until confirmed, and can be discarded",
  async fn() {
    const schema = await freshSchema();
    const store = await unlockedStore(schema);
    const backend = store.backend as PostgresBackend;
    try {
      const { meta } = await newStoreKeys(3);
      await backend.initPendingMeta(meta);
      assert.equal(await backend.readMeta(), undefined);
      assert.deepEqual(
        (await backend.readPendingMeta())?.commitments,
        meta.commitments,
      );
      await assert.rejects(backend.initPendingMeta(meta), {
        name: "StoreError",
      });
      await backend.discardPendingMeta(meta.storeId);
      assert.equal(await backend.readPendingMeta(), undefined);
      await backend.initPendingMeta(meta);
      await backend.confirmPendingMeta(meta.storeId);
      assert.deepEqual((await backend.readMeta())?.storeId, meta.storeId);
      await assert.rejects(backend.confirmPendingMeta(meta.storeId), {
        name: "StoreError",
      });
    } finally {
      await store.close();
    }
  },
});
