// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The attack of issue 10, item 2, against real keepers: a spike/bootstrap
// SVID overwrites every keeper's shard, so the next nexus start cannot
// rebuild the root key. Keepers now take shards from nexus only, unless
// SPIKE_KEEPER_ALLOW_BOOTSTRAP=true brings upstream's habit back.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import { waitForKeeperShards } from "./reliability_support.ts";

const BOOTSTRAP = "spiffe://spike.ist/spike/bootstrap";

function contribute(cluster: Cluster, keeper: number) {
  return cluster.request(
    "bootstrap",
    `${cluster.keeperUrl(keeper)}/v1/store/contribute`,
    { shard: Array(32).fill(66), index: keeper },
    "keeper",
  );
}

Deno.test("a bootstrap identity cannot overwrite keeper shards unless the keeper allows it", async (t) => {
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  try {
    await cluster.issue("bootstrap", BOOTSTRAP);
    await cluster.start();
    await cluster.waitUnlocked();
    const put = await cluster.call("superuser", "/v1/store/secrets", {
      path: "apps/db",
      values: { password: "kept" },
    });
    assert.equal(put.status, 200);
    await waitForKeeperShards(cluster);

    await t.step("keepers refuse the bootstrap identity", async () => {
      for (const i of [1, 2, 3]) {
        await assert.rejects(
          contribute(cluster, i),
          /closed|reset|socket|TLS|unreachable/i,
          `keeper ${i} took a shard from a bootstrap identity`,
        );
      }
      const log = await Deno.readTextFile(cluster.keepers.get(1)!.logFile);
      assert.match(log, /not authorized.*spike\/bootstrap/);
    });

    await t.step(
      "a restarted nexus still rebuilds the real root key",
      async () => {
        await cluster.stopNexus();
        await cluster.startNexus();
        await cluster.waitUnlocked();
        const got = await cluster.call(
          "superuser",
          "/v1/store/secrets?action=get",
          { path: "apps/db" },
        );
        assert.deepEqual(got.body?.data, { password: "kept" });
      },
    );

    await t.step(
      "SPIKE_KEEPER_ALLOW_BOOTSTRAP=true lets bootstrap store a shard",
      async () => {
        await cluster.stopKeeper(3);
        cluster.options.keeperEnv.SPIKE_KEEPER_ALLOW_BOOTSTRAP = "true";
        await cluster.startKeeper(3);
        const res = await contribute(cluster, 3);
        assert.equal(res.status, 200);
        // Reading the shard back stays reserved to nexus.
        const read = await cluster.request(
          "bootstrap",
          `${cluster.keeperUrl(3)}/v1/store/shard`,
          {},
          "keeper",
        );
        assert.equal(read.status, 401);
      },
    );
  } finally {
    await cluster.close();
  }
});
