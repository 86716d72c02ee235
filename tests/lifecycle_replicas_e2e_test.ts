// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The key and data lifecycle with replicas on PostgreSQL, all real
// processes: only the push leader may rekey; a replica whose key a rekey
// replaced stops rather than push the old key's shards, and recovers the
// new key when started again; a backup taken through a replica restores
// into an empty schema, where a new replica unlocks from the keepers.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import { ReplicaSet } from "../scripts/replicas.ts";
import {
  announceSkip,
  freshSchema,
  pg,
  testDatabaseUrl,
} from "./pg_support.ts";
import { waitFor } from "./reliability_support.ts";

announceSkip("lifecycle_replicas_e2e_test.ts");

const SECRETS = "/v1/store/secrets";

async function leaderOf(set: ReplicaSet, via: number): Promise<number> {
  const res = await set.call(via, "superuser", "/v1/operator/status");
  const rows = (res.body?.replicas ?? []) as {
    name: string;
    pushLeader: boolean;
  }[];
  const leader = rows.find((r) => r.pushLeader);
  return leader ? Number(leader.name.replace("replica-", "")) : 0;
}

Deno.test({
  name:
    "replicas: only the push leader rekeys, a replica left with the old key stops and recovers the new one, and a backup restores into an empty schema",
  ignore: !pg,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await Cluster.create({
      keepers: 3,
      threshold: 2,
      logLevel: "INFO",
      keeperUpdateInterval: "2s",
    });
    const set = new ReplicaSet(
      cluster,
      2,
      testDatabaseUrl(await freshSchema()),
      { SPIKE_NEXUS_POLICY_CHECK_INTERVAL: "500ms" },
    );
    let restored: ReplicaSet | undefined;
    try {
      for (let i = 1; i <= 3; i++) await cluster.startKeeper(i);
      await set.startAll();
      await set.waitUnlocked(1);
      await set.waitUnlocked(2);
      for (let i = 0; i < 5; i++) {
        const res = await set.call(1, "superuser", SECRETS, {
          path: `app/${i}`,
          values: { v: String(i) },
        });
        assert.equal(res.status, 200);
      }
      let leader = 0;
      await waitFor("a push leader", async () => {
        leader = await leaderOf(set, 1);
        return leader !== 0;
      });
      const other = leader === 1 ? 2 : 1;
      const refused = await set.call(other, "superuser", "/v1/operator/rekey");
      assert.equal(refused.status, 409);
      const rekey = await set.call(leader, "superuser", "/v1/operator/rekey");
      assert.equal(rekey.status, 200, JSON.stringify(rekey.body));
      // The other replica learns its key is gone, and stops.
      const stale = set.running.get(other)!;
      const exit = await stale.status;
      assert.equal(exit.code, 1);
      assert.match(
        await Deno.readTextFile(stale.logFile),
        /root key was replaced by another replica/,
      );
      set.running.delete(other);
      await set.start(other);
      await set.waitUnlocked(other);
      const got = await set.call(other, "superuser", `${SECRETS}?action=get`, {
        path: "app/3",
      });
      assert.deepEqual(got.body?.data, { v: "3" });

      // A backup through a replica, into an empty schema.
      const file = `${cluster.dir}/replicas.spkb`;
      const backup = await cluster.pilot("superuser", [
        "operator",
        "backup",
        "-o",
        file,
      ], { env: { SPIKE_NEXUS_API_URL: set.url(other) } });
      assert.equal(backup.code, 0, backup.stderr);
      const target = testDatabaseUrl(await freshSchema());
      restored = new ReplicaSet(cluster, 1, target);
      const env = { ...restored.env(1) };
      const result = await cluster.nexusCommand(["restore-backup", file], env);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /5 secrets/);
      // A second restore into that schema is refused: it holds a store.
      const again = await cluster.nexusCommand(["restore-backup", file], env);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /not empty/);
      await set.close();
      await restored.start(1);
      await restored.waitUnlocked(1);
      const read = await restored.call(
        1,
        "superuser",
        `${SECRETS}?action=get`,
        {
          path: "app/4",
        },
      );
      assert.deepEqual(read.body?.data, { v: "4" });
    } finally {
      await restored?.close();
      await set.close();
      await cluster.close();
    }
  },
});
