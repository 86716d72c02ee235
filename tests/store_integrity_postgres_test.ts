// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The store digest on PostgreSQL, where writes log themselves and the push
// leader folds the log into the integrity row: replicas that fold in turn
// rebuild their ledger instead of failing, a store of schema 2 is anchored
// on its first unlock, and rows or log entries changed behind nexus's back
// hold the store at the next unlock.
import assert from "node:assert/strict";
import { type NexusStore, openStore } from "../modes/nexus/store/open.ts";
import { IntegrityLedger } from "../modes/nexus/store/integrity_ledger.ts";
import { newStoreKeys, type StoreKeys } from "./store_support.ts";
import {
  adminSql,
  announceSkip,
  freshSchema,
  pg,
  testAdminUrl,
  testDatabase,
  testPool,
} from "./pg_support.ts";

announceSkip("store_integrity_postgres_test.ts");

const opts = { ignore: !pg, sanitizeResources: false, sanitizeOps: false };

async function replica(
  schema: string,
  keys: StoreKeys,
): Promise<NexusStore> {
  const store = await openStore({
    backend: "postgres",
    postgres: testPool(testDatabase(schema)),
    maxVersions: 10,
  });
  if (!await store.readMeta()) await store.initMeta(keys.meta);
  await store.unlock(keys.keys);
  return store;
}

async function admin(schema: string, sql: string): Promise<unknown[]> {
  const db = adminSql(testAdminUrl());
  try {
    return await db.unsafe(sql.replaceAll("$S", schema));
  } finally {
    await db.end();
  }
}

async function inStep(store: NexusStore, keys: StoreKeys) {
  const snapshot = await store.backend.readIntegrity();
  assert.deepEqual(snapshot.pending, [], "everything folded");
  const rebuilt = new IntegrityLedger(
    store.integrityKey,
    keys.storeId,
    snapshot,
    snapshot.row!.epoch,
  );
  assert.equal(rebuilt.mismatch(snapshot.row!), undefined);
}

Deno.test({
  ...opts,
  name:
    "replicas fold the write log in turn, each rebuilding its ledger when another folded first",
  async fn() {
    const schema = await freshSchema();
    const keys = await newStoreKeys();
    const a = await replica(schema, keys);
    const b = await replica(schema, keys);
    try {
      await a.secrets.put("p", { k: "1" });
      await b.secrets.put("p", { k: "2" });
      await b.policies.putPolicy({
        name: "x",
        spiffeIdPattern: "spiffe://spike\\.ist/x",
        pathPattern: "p",
        permissions: ["read"],
      });
      assert.equal((await a.backend.readIntegrity()).pending?.length, 3);
      await a.fold();
      await inStep(a, keys);
      assert.equal(a.ledger!.row.generation, 3);
      await b.secrets.put("q", { k: "1" });
      // b's ledger is from its unlock: the row moved under it.
      await b.fold();
      await inStep(b, keys);
      assert.equal(b.hold, undefined);
      assert.equal(b.ledger!.row.generation, 4);
      await a.fold();
      assert.equal(a.hold, undefined);
      assert.deepEqual(a.ledger!.row, b.ledger!.row);
      // Reads compare with what was folded.
      assert.equal(a.ledger!.revisionOf("p"), 2);
      // A third replica unlocking with writes not folded yet takes them
      // out before comparing.
      await a.secrets.put("q", { k: "2" });
      const c = await replica(schema, keys);
      try {
        assert.equal(c.hold, undefined);
        assert.equal(c.ledger!.row.generation, 4);
      } finally {
        await c.close();
      }
    } finally {
      await a.close();
      await b.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "a PostgreSQL store of schema 2 is anchored on its first unlock",
  async fn() {
    const schema = await freshSchema();
    const keys = await newStoreKeys();
    let store = await replica(schema, keys);
    await store.secrets.put("p", { k: "1" });
    await store.secrets.put("p", { k: "2" });
    await store.close();
    // What a build before schema 3 left.
    await admin(
      schema,
      `DROP TABLE $S.spike_integrity, $S.spike_integrity_log,
         $S.spike_audit_anchor;
       DROP INDEX $S.spike_secrets_revisions;
       UPDATE $S.spike_meta SET schema_version = 2`,
    );
    store = await replica(schema, keys);
    try {
      assert.equal(store.hold, undefined);
      assert.equal((await store.readMeta())!.schemaVersion, 3);
      assert.equal(store.ledger!.row.generation, 2);
      assert.deepEqual(await store.secrets.get("p"), { k: "2" });
      await store.secrets.put("p", { k: "3" });
      await store.fold();
      await inStep(store, keys);
    } finally {
      await store.close();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "a head put back, a log entry removed, or the integrity row removed holds a PostgreSQL store",
  async fn() {
    const schema = await freshSchema();
    const keys = await newStoreKeys();
    let store = await replica(schema, keys);
    await store.secrets.put("p", { k: "old" });
    const [saved] = await admin(
      schema,
      "SELECT revision, encode(head, 'hex') AS head FROM $S.spike_secrets",
    ) as { revision: string; head: string }[];
    await store.secrets.put("p", { k: "new" });
    await store.fold();
    await store.close();
    const reopen = async () => {
      const s = await replica(schema, keys);
      const hold = s.hold;
      await s.close();
      return hold;
    };
    assert.equal(await reopen(), undefined);
    // The older head, folded already: the digest tells.
    await admin(
      schema,
      `UPDATE $S.spike_secrets SET revision = ${saved!.revision},
         head = decode('${saved!.head}', 'hex')`,
    );
    assert.match((await reopen())?.message ?? "", /rolled back or removed/);
    await admin(schema, "UPDATE $S.spike_secrets SET revision = 2");
    // A write not folded yet whose log entry is removed.
    store = await replica(schema, keys);
    await store.secrets.put("q", { k: "1" });
    await store.close();
    await admin(schema, "DELETE FROM $S.spike_integrity_log");
    assert.equal((await reopen())?.kind, "tampered");
    await admin(
      schema,
      `INSERT INTO $S.spike_integrity_log (path, from_revision, to_revision)
       VALUES ('q', 0, 1)`,
    );
    assert.equal(await reopen(), undefined);
    await admin(schema, "DELETE FROM $S.spike_integrity");
    assert.equal((await reopen())?.kind, "unanchored");
  },
});

Deno.test({
  ...opts,
  name: "each replica's audit chain has its own anchor, bound to its name",
  async fn() {
    const schema = await freshSchema();
    const keys = await newStoreKeys();
    const store = await replica(schema, keys);
    try {
      const head = (seq: number) => ({
        seq,
        hash: new Uint8Array(32).fill(seq),
      });
      await store.anchorAudit(head(5), "east");
      await store.anchorAudit(head(9), "west");
      assert.equal((await store.auditAnchor("east"))?.seq, 5);
      assert.equal((await store.auditAnchor("west"))?.seq, 9);
      assert.equal(await store.auditAnchor(""), undefined);
      // One replica's row copied over another's does not verify.
      await admin(
        schema,
        `UPDATE $S.spike_audit_anchor SET (seq, hash, mac) =
           (SELECT seq, hash, mac FROM $S.spike_audit_anchor
            WHERE name = 'west') WHERE name = 'east'`,
      );
      assert.equal(await store.auditAnchor("east"), undefined);
    } finally {
      await store.close();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "every PostgreSQL replica reports the store's position, folded or not, and the ledger's when cut off",
  async fn() {
    const schema = await freshSchema();
    const keys = await newStoreKeys();
    const a = await replica(schema, keys);
    const b = await replica(schema, keys);
    try {
      const start = await a.position();
      await b.secrets.put("p", { k: "1" });
      await b.secrets.put("p", { k: "2" });
      await b.policies.putPolicy({
        name: "x",
        spiffeIdPattern: "spiffe://spike\\.ist/workload/x",
        pathPattern: "p",
        permissions: ["read"],
      });
      // Nobody folded: each replica's ledger saw none of it, yet both say
      // three writes more.
      const moved = { epoch: start!.epoch, generation: start!.generation + 3 };
      assert.deepEqual(await a.position(), moved);
      assert.deepEqual(await b.position(), moved);
      assert.equal(a.rows!.generation, start!.generation);
      await a.fold();
      assert.deepEqual(await a.position(), moved);
      assert.deepEqual(await b.position(), moved);
      assert.equal(a.rows!.generation, moved.generation);
      // A replica without its database still answers, from its ledger.
      await admin(schema, "ALTER TABLE $S.spike_integrity RENAME TO gone");
      assert.deepEqual(await a.position(), moved);
      await admin(schema, "ALTER TABLE $S.gone RENAME TO spike_integrity");
    } finally {
      await a.close();
      await b.close();
    }
  },
});
