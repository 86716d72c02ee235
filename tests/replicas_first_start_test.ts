// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The first start of a shared store when creators die half-way, with real
// processes: a first creator killed after one keeper took its shard, a
// second killed after another keeper took its own while the first keeper
// (frozen) still held the first creator's shard; the third replica makes
// the store and gives every keeper its new share, and the database forgets
// the abandoned stores. A shard of a store not made in the database still
// stops a creation.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import { ReplicaSet } from "../scripts/replicas.ts";
import {
  adminSql,
  announceSkip,
  freshSchema,
  pg,
  testAdminUrl,
  testDatabaseUrl,
} from "./pg_support.ts";
import { waitFor } from "./reliability_support.ts";

announceSkip("replicas_first_start_test.ts");

const WAITING = "Waiting for keepers to take the new root key's shards";

async function logOf(set: ReplicaSet, i: number): Promise<string> {
  return await Deno.readTextFile(set.running.get(i)!.logFile);
}

Deno.test({
  name:
    "creators killed half-way one after another: the next replica overwrites every abandoned store's shards and makes the store",
  ignore: !pg,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
    const schema = await freshSchema();
    // A frozen keeper costs each call to it this long.
    const set = new ReplicaSet(cluster, 3, testDatabaseUrl(schema), {
      SPIKE_NEXUS_KEEPER_TIMEOUT: "1s",
    });
    const admin = adminSql(testAdminUrl());
    const meta = async () =>
      (await admin.unsafe(
        `SELECT state, encode(store_id, 'hex') AS id FROM ${schema}.spike_meta`,
      ))[0]!;
    try {
      // The first creator: only keeper 1 is up and takes its shard; the
      // creator waits for a second keeper and is killed.
      await cluster.startKeeper(1);
      await set.start(1);
      await waitFor(
        "the first creator to wait",
        async () => (await logOf(set, 1)).includes(WAITING),
        30_000,
      );
      const first = await meta();
      assert.equal(first.state, "pending");
      await set.stop(1, "SIGKILL");

      // The second: keeper 1 frozen (it keeps the first store's shard and
      // answers nothing), keeper 2 takes the second store's shard.
      cluster.keepers.get(1)!.signal("SIGSTOP");
      await cluster.startKeeper(2);
      await set.start(2);
      await waitFor(
        "the second creator to wait",
        async () => (await logOf(set, 2)).includes(WAITING),
        30_000,
      );
      assert.match(await logOf(set, 2), /Discarding a store that a replica/);
      const second = await meta();
      assert.equal(second.state, "pending");
      assert.notEqual(second.id, first.id);
      await set.stop(2, "SIGKILL");
      cluster.keepers.get(1)!.signal("SIGCONT");

      // The third, with every keeper up: keeper 1 holds the first store's
      // shard, keeper 2 the second's.
      await cluster.startKeeper(3);
      const third = await set.start(3);
      // Before the second level was remembered, it refused: keeper 1
      // holds a shard of a store it did not know.
      await waitFor("the third replica to unlock or stop", async () => {
        if (!third.running) return true;
        const status = await set.call(3, "superuser", "/v1/operator/status");
        return status.body?.state === "unlocked";
      }, 60_000);
      assert.ok(third.running, await logOf(set, 3));
      const made = await meta();
      assert.equal(made.state, "ready");
      assert.ok(made.id !== first.id && made.id !== second.id);
      const [left] = await admin.unsafe(
        `SELECT count(*) AS n FROM ${schema}.spike_abandoned_shards`,
      );
      assert.equal(Number(left!.n), 0, "the abandoned stores are forgotten");
      const status = await set.call(3, "superuser", "/v1/operator/status", {
        probe: true,
      });
      assert.deepEqual(
        (status.body?.keepers as { holdsShard: boolean }[]).map((k) =>
          k.holdsShard
        ),
        [true, true, true],
        "every keeper holds its share of the new key",
      );
      assert.equal(
        (await set.call(3, "superuser", "/v1/store/secrets", {
          path: "a",
          values: { k: "v" },
        })).status,
        200,
      );

      // A shard of a store not made in this database still stops a
      // creation: a replica on an empty schema leaves the keepers alone.
      const elsewhere = new ReplicaSet(
        cluster,
        1,
        testDatabaseUrl(await freshSchema()),
      );
      const refused = await elsewhere.start(1);
      assert.equal((await refused.status).code, 1);
      assert.match(
        await Deno.readTextFile(refused.logFile),
        /already holds a shard, which may belong to another store: if SPIKE_NEXUS_DATABASE_URL names the wrong database/,
      );
      const after = await set.call(3, "superuser", "/v1/operator/status", {
        probe: true,
      });
      assert.deepEqual(
        (after.body?.keepers as { holdsShard: boolean }[]).map((k) =>
          k.holdsShard
        ),
        [true, true, true],
      );
    } finally {
      cluster.keepers.get(1)?.signal("SIGCONT");
      await admin.end();
      await set.close();
      await cluster.close();
    }
  },
});
