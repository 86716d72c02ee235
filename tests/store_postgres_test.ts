// Copyright 2026 the SPIKE for Deno authors. MIT license.
// What only the PostgreSQL backend does: writes whose connection breaks
// mid-commit are settled without a duplicate version, and still are with
// the write fence pruned as they go (which keeps it bounded); two stores
// (two replicas) writing one path keep versions contiguous, the schema is
// made once and a newer one is refused, a store of the first layout is
// migrated, a pending store is invisible, and the database never holds a
// plaintext value.
import assert from "node:assert/strict";
import type postgres from "postgres";
import { derivePurposeKeys } from "../lib/crypto/kdf.ts";
import { ApiError } from "../lib/wire/errors.ts";
import { freePort } from "../scripts/cluster.ts";
import { SCHEMA_VERSION } from "../modes/nexus/store/backend.ts";
import { openStore } from "../modes/nexus/store/open.ts";
import { PostgresBackend } from "../modes/nexus/store/postgres_backend.ts";
import { openPool } from "../modes/nexus/store/postgres_connect.ts";
import { LAYOUT } from "../modes/nexus/store/postgres_schema.ts";
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
import { sized, waitFor } from "./reliability_support.ts";

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
        `INSERT INTO ${schema}.spike_write_fence (write_id, epoch)
         VALUES ($1, 1)`,
        [late],
      );
      await assert.rejects(
        admin.begin(async (tx) => {
          await tx.unsafe(`SET LOCAL search_path = ${schema}`);
          await tx.unsafe(
            "SELECT spike_write_secret($1, 1, 'a', 2, '\\x00', 0, NULL, 0)",
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
    "the schema is created once by replicas opening together, and a newer schema or layout is refused",
  async fn() {
    const schema = await freshSchema();
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => unlockedStore(schema)),
    );
    for (const s of stores) await s.close();
    const admin = adminSql(testAdminUrl());
    try {
      await admin.unsafe(
        `UPDATE ${schema}.spike_meta SET layout = ${LAYOUT + 1}`,
      );
      await assert.rejects(unlockedStore(schema), {
        name: "StoreError",
        message: new RegExp(
          `PostgreSQL layout ${LAYOUT + 1}, newer than this build supports`,
        ),
      });
      await admin.unsafe(
        `UPDATE ${schema}.spike_meta SET layout = ${LAYOUT},
           schema_version = ${SCHEMA_VERSION + 1}`,
      );
    } finally {
      await admin.end();
    }
    await assert.rejects(unlockedStore(schema), {
      name: "StoreError",
      message: new RegExp(
        `schema version ${SCHEMA_VERSION + 1}, newer than this build supports`,
      ),
    });
  },
});

Deno.test({
  ...opts,
  name:
    "a pending store is no store until confirmed, and can be discarded; discarded stores are remembered until one is ready",
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
      // Every discarded store is remembered until a store is ready.
      const other = (await newStoreKeys(3)).meta;
      await backend.initPendingMeta(other);
      await backend.discardPendingMeta(other.storeId);
      const abandoned = (await backend.readAbandoned()).map((a) =>
        a.storeId.toHex()
      );
      assert.deepEqual(
        abandoned.sort(),
        [meta.storeId.toHex(), other.storeId.toHex()].sort(),
      );
      assert.deepEqual(
        (await backend.readAbandoned()).find((a) =>
          a.storeId.toHex() === other.storeId.toHex()
        )?.commitments,
        other.commitments,
      );
      await backend.initPendingMeta(meta);
      await backend.confirmPendingMeta(meta.storeId);
      assert.deepEqual((await backend.readMeta())?.storeId, meta.storeId);
      assert.deepEqual(await backend.readAbandoned(), []);
      await assert.rejects(backend.confirmPendingMeta(meta.storeId), {
        name: "StoreError",
      });
    } finally {
      await store.close();
    }
  },
});

// The fence table of a schema: row count and epoch.
async function fenceState(admin: postgres.Sql, schema: string) {
  const [row] = await admin.unsafe(
    `SELECT (SELECT count(*) FROM ${schema}.spike_write_fence) AS rows,
            (SELECT fence_epoch FROM ${schema}.spike_meta) AS epoch`,
  );
  return { rows: Number(row!.rows), epoch: Number(row!.epoch) };
}

// Runs a statement in `schema` as the superuser.
function inSchema(
  admin: postgres.Sql,
  schema: string,
  sql: string,
  args: unknown[] = [],
) {
  return admin.begin(async (tx) => {
    await tx.unsafe(`SET LOCAL search_path = ${schema}`);
    return await tx.unsafe(sql, args as never[]);
  });
}

Deno.test({
  ...opts,
  name:
    "the write fence stays bounded under many writes: each prune keeps the rows of two epochs at most",
  async fn() {
    const schema = await freshSchema();
    const keys = await newStoreKeys();
    const store = await openStore({
      backend: "postgres",
      postgres: testPool(testDatabase(schema)),
      maxVersions: 5,
    });
    const backend = store.backend as PostgresBackend;
    const admin = adminSql(testAdminUrl());
    try {
      await store.initMeta(keys.meta);
      await store.unlock(keys.keys);
      const perRound = 60;
      let most = 0;
      for (let round = 0; round < sized(8, 40); round++) {
        // Four writers at once, on few paths: conflicts and retries too.
        await Promise.all(Array.from({ length: 4 }, async (_, w) => {
          for (let i = 0; i < perRound / 4; i++) {
            await store.secrets.put(`fence/${(w + i) % 3}`, { v: `${i}` });
          }
        }));
        most = Math.max(most, (await fenceState(admin, schema)).rows);
        await backend.pruneWriteFence();
        const after = await fenceState(admin, schema);
        assert.ok(
          after.rows <= perRound,
          `${after.rows} rows after prune ${after.epoch - 1}`,
        );
      }
      // A write that lost a race rolled back its fence row with it: each
      // round left exactly its puts' rows, and no more than two rounds'
      // were ever there.
      assert.equal(most, 2 * perRound);
      const meta = await store.secrets.metadata("fence/0");
      assert.equal(Object.keys(meta.versions).length, 5);
    } finally {
      await admin.end();
      await store.close();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "with the fence pruned, a settled write never commits late and a settling whose row may be gone says the outcome is unknown",
  async fn() {
    const schema = await freshSchema();
    const keys = await newStoreKeys();
    const proxy = TcpProxy.start({ hostname: pg!.host, port: pg!.port });
    const store = await unlockedStore(schema, proxy.port);
    const backend = store.backend as PostgresBackend;
    const admin = adminSql(testAdminUrl());
    const id = (n: number) => new Uint8Array(16).fill(n);
    const prune = () =>
      inSchema(admin, schema, "SELECT spike_prune_write_fence()");
    const settle = async (n: number, epoch: number) =>
      (await inSchema(
        admin,
        schema,
        "SELECT spike_settle_write($1, $2) AS outcome",
        [id(n), epoch],
      ))[0]!.outcome;
    const write = (n: number, epoch: number, expected: number) =>
      inSchema(
        admin,
        schema,
        "SELECT spike_write_secret($1, $2, 'p', $3, '\\x00', 0, NULL, 0)",
        [id(n), epoch, expected],
      );
    const revision = async () =>
      Number(
        (await admin.unsafe(
          `SELECT revision FROM ${schema}.spike_secrets WHERE path = 'p'`,
        ))[0]?.revision ?? 0,
      );
    try {
      await store.initMeta(keys.meta);
      // Through the backend: a write commits, its answer is lost, and the
      // proxy holds back the settling while the fence is pruned twice.
      const head = new TextEncoder().encode("head-unknown");
      proxy.cutOnce(head.toHex(), "after", "blackhole");
      const outcome = assert.rejects(
        backend.writeSecret("p", 0, { head }),
        {
          name: "ApiError",
          message: /outcome of a write is unknown.*pruned/,
        },
      );
      await waitFor("the write to commit", async () => await revision() === 1);
      await prune();
      await prune();
      proxy.setMode("forward");
      await outcome;
      assert.equal(await revision(), 1, "written once");

      // A replica that wrote nothing during several prunes writes on: its
      // stale epoch is refused before anything changes, and it resends.
      for (let i = 0; i < 3; i++) await prune();
      assert.deepEqual(
        await backend.writeSecret("p", 1, { head: new Uint8Array([1]) }),
        { ok: true, revision: 2 },
      );

      // A settling answers the same when its own answer was lost and it
      // runs again: fenced stays fenced, committed stays committed.
      const { epoch } = await fenceState(admin, schema);
      assert.equal(await settle(1, epoch), "fenced");
      assert.equal(await settle(1, epoch), "fenced");
      await write(2, epoch, 2);
      assert.equal(await settle(2, epoch), "committed");
      assert.equal(await settle(2, epoch), "committed");
      // A fenced write arriving late fails on its id ...
      await assert.rejects(write(1, epoch, 3), { code: "23505" });
      // ... and, once its fence row is pruned, on its epoch.
      await prune();
      await prune();
      assert.equal((await fenceState(admin, schema)).rows, 0);
      await assert.rejects(write(1, epoch, 3), { code: "SP003" });
      assert.equal(await revision(), 3);
      // A committed write whose row was pruned cannot be told from one
      // that never came: its settling is refused, nothing inserted.
      await assert.rejects(settle(2, epoch), { code: "SP003" });
      assert.equal((await fenceState(admin, schema)).rows, 0);
    } finally {
      await admin.end();
      await store.close();
      proxy.close();
    }
  },
});

const LAYOUT1 = new URL("./fixtures/postgres_layout1/", import.meta.url)
  .pathname;

Deno.test({
  ...opts,
  name:
    "a store written by the first PostgreSQL layout is migrated: every value and policy kept, writes fenced by epoch",
  async fn() {
    const manifest = JSON.parse(
      await Deno.readTextFile(`${LAYOUT1}manifest.json`),
    );
    const schema = await freshSchema();
    // pg_dump's output, run as the store's role in a fresh schema: psql
    // meta-commands and the dump's own schema and search path left out.
    const dump = (await Deno.readTextFile(`${LAYOUT1}dump.sql`))
      .split("\n")
      .filter((line) =>
        !line.startsWith("\\") && !line.startsWith("CREATE SCHEMA") &&
        !line.includes("set_config('search_path'")
      )
      .join("\n")
      .replaceAll(`${manifest.schema}.`, `${schema}.`);
    const owner = openPool(testPool(testDatabase(schema)));
    try {
      await owner.unsafe(dump);
    } finally {
      await owner.end();
    }
    const store = await unlockedStore(schema);
    const admin = adminSql(testAdminUrl());
    try {
      const [meta] = await admin.unsafe(
        `SELECT layout, fence_epoch, schema_version FROM ${schema}.spike_meta`,
      );
      assert.deepEqual(
        [meta!.layout, Number(meta!.fence_epoch), meta!.schema_version],
        [LAYOUT, 1, SCHEMA_VERSION],
      );
      const fence = await fenceState(admin, schema);
      assert.ok(fence.rows > 0, "the first layout's fence rows are kept");
      assert.deepEqual(
        await (store.backend as PostgresBackend).readAbandoned(),
        [],
      );
      const keys = await derivePurposeKeys(
        Uint8Array.fromHex(manifest.root),
        Uint8Array.fromHex(manifest.storeId),
      );
      await store.unlock(keys);
      for (const [path, want] of Object.entries(manifest.secrets)) {
        const expected = want as Record<string, unknown>;
        assert.deepEqual(
          await store.secrets.metadata(path),
          expected.metadata,
          path,
        );
        if (expected.current) {
          assert.deepEqual(await store.secrets.get(path), expected.current);
        }
      }
      assert.deepEqual(
        await store.secrets.get("apps/db", 1),
        manifest.secrets["apps/db"].v1,
      );
      assert.deepEqual(
        (await store.policies.loadPolicies(() => {})).map((p) => p.name),
        manifest.policies,
      );
      // The new functions write; the old rows are pruned like any others
      // (epoch 1), and the write after the first prune is kept (epoch 2).
      const backend = store.backend as PostgresBackend;
      await backend.pruneWriteFence();
      assert.equal(await store.secrets.put("apps/db", { pass: "four" }), 4);
      assert.equal(await store.secrets.put("apps/db", { pass: "five" }), 5);
      assert.equal(await backend.pruneWriteFence(), fence.rows + 1);
      assert.equal((await fenceState(admin, schema)).rows, 1);
      assert.deepEqual(await store.secrets.get("apps/db"), { pass: "five" });
    } finally {
      await admin.end();
      await store.close();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "a store gets its database back after it refused connections, and answers at once while it refuses logins",
  async fn() {
    // A role of its own: this test refuses its logins for a moment.
    const role = `spike_refused_${Deno.pid}`;
    const admin = adminSql(testAdminUrl());
    await admin.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD 'refused-pw'`);
    await admin.unsafe(`CREATE SCHEMA ${role} AUTHORIZATION ${role}`);
    const port = freePort();
    let proxy = TcpProxy.start(
      { hostname: pg!.host, port: pg!.port },
      {},
      port,
    );
    const store = await openStore({
      backend: "postgres",
      postgres: testPool(
        testDatabase(role, {
          port,
          user: role,
          password: "refused-pw",
          connectTimeoutMs: 2_000,
        }),
        2,
      ),
      maxVersions: 10,
    });
    const keys = await newStoreKeys();
    // Each read settles: answered, or refused as unreachable (503); one
    // that waits on and on is what this test is about.
    const read = async (path = "p") => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        return await Promise.race([
          store.backend.readSecret(path).then(
            () => "read",
            (e) => e instanceof ApiError ? e.code : `unexpected ${e}`,
          ),
          new Promise<string>((r) => {
            timer = setTimeout(() => r("no answer"), 20_000);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    };
    try {
      await store.initMeta(keys.meta);
      // Nothing listens: every connection attempt is refused, more of them
      // than the pool has connections.
      proxy.close();
      await waitFor("refusals", async () => await read() === "state_not_ready");
      for (let i = 0; i < 5; i++) assert.equal(await read(), "state_not_ready");
      proxy = TcpProxy.start({ hostname: pg!.host, port: pg!.port }, {}, port);
      await waitFor("reads again", async () => await read() === "read");
      // A read breaks mid-way (its answer lost), then the server refuses
      // the role's logins.
      proxy.cutOnce("refused/marker", "after");
      assert.equal(await read("refused/marker"), "state_not_ready");
      await admin.unsafe(`ALTER ROLE ${role} NOLOGIN`);
      for (let i = 0; i < 5; i++) assert.equal(await read(), "state_not_ready");
      await admin.unsafe(`ALTER ROLE ${role} LOGIN`);
      await waitFor("reads again", async () => await read() === "read");
    } finally {
      await store.close();
      proxy.close();
      await admin.unsafe(`DROP SCHEMA ${role} CASCADE`);
      await admin.unsafe(`DROP ROLE ${role}`);
      await admin.end();
    }
  },
});
