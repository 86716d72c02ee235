// Copyright 2026 the SPIKE for Deno authors. MIT license.
// End-to-end tests of the root-key lifecycle with real keeper and nexus
// processes: unlock, crash recovery from keepers, keeper re-hydration,
// thresholds, corrupted shards, and who may read a shard.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";

async function putSecret(cluster: Cluster, path: string, value: string) {
  const res = await cluster.call("superuser", "/v1/store/secrets", {
    path,
    values: { v: value },
  });
  assert.equal(res.status, 200, `put ${path}: ${JSON.stringify(res.body)}`);
}

async function getSecret(cluster: Cluster, path: string) {
  return await cluster.call("superuser", "/v1/store/secrets?action=get", {
    path,
  });
}

async function keeperShardStatus(cluster: Cluster, i: number) {
  return await cluster.request(
    "nexus",
    `${cluster.keeperUrl(i)}/v1/store/shard`,
    {},
    "keeper",
  );
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

async function locked(cluster: Cluster) {
  const res = await cluster.call("superuser", "/v1/operator/status");
  return res.status === 200 && res.body?.state === "locked";
}

Deno.test("nexus recovers its root key from keepers after kill -9", async (t) => {
  const cluster = await Cluster.create({
    keepers: 3,
    threshold: 2,
    keeperUpdateInterval: "1s",
  });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    await putSecret(cluster, "apps/db", "before-crash");

    await t.step(
      "a new nexus on the same store unlocks from keepers alone",
      async () => {
        await cluster.stopNexus("SIGKILL");
        await cluster.startNexus();
        await cluster.waitUnlocked();
        const res = await getSecret(cluster, "apps/db");
        assert.equal(res.status, 200);
        assert.deepEqual(res.body?.data, { v: "before-crash" });
      },
    );

    await t.step(
      "a restarted keeper gets its shard back within one interval",
      async () => {
        await cluster.stopKeeper(2);
        await cluster.startKeeper(2);
        assert.equal((await keeperShardStatus(cluster, 2)).status, 404);
        await waitFor(
          "keeper 2 to hold a shard",
          async () => (await keeperShardStatus(cluster, 2)).status === 200,
        );
      },
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("nexus stays locked below threshold and unlocks when a keeper answers again", async () => {
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    await putSecret(cluster, "team/key", "v1");
    await cluster.stopNexus();
    // Frozen keepers keep their shard in memory but answer nothing.
    cluster.keepers.get(1)!.signal("SIGSTOP");
    cluster.keepers.get(2)!.signal("SIGSTOP");
    await cluster.startNexus();
    await new Promise((r) => setTimeout(r, 2000));
    assert.ok(await locked(cluster), "1 of 3 keepers must not unlock nexus");
    const blocked = await getSecret(cluster, "team/key");
    assert.equal(blocked.status, 503);
    assert.equal(blocked.body?.err, "state_not_ready");

    cluster.keepers.get(2)!.signal("SIGCONT");
    await cluster.waitUnlocked();
    assert.deepEqual((await getSecret(cluster, "team/key")).body?.data, {
      v: "v1",
    });
    cluster.keepers.get(1)!.signal("SIGCONT");
  } finally {
    await cluster.close();
  }
});

Deno.test("a keeper returning a corrupted shard is skipped and never yields a wrong key", async () => {
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    await putSecret(cluster, "payments/api", "kept");
    await cluster.stopNexus();
    // Overwrite keeper 1's shard with garbage, as a broken keeper would.
    const bogus = Array.from({ length: 32 }, (_, i) => (i * 37 + 11) % 256);
    const put = await cluster.request(
      "nexus",
      `${cluster.keeperUrl(1)}/v1/store/contribute`,
      { shard: bogus, index: 1 },
      "keeper",
    );
    assert.equal(put.status, 200);

    // The corrupted keeper and one honest keeper: still locked.
    cluster.keepers.get(3)!.signal("SIGSTOP");
    await cluster.startNexus();
    await waitFor(
      "nexus to refuse the corrupted shard",
      async () =>
        (await Deno.readTextFile(cluster.nexus!.logFile)).includes(
          "does not match its commitment",
        ),
    );
    assert.ok(await locked(cluster), "a wrong shard must not unlock nexus");

    // A second honest keeper answers: nexus unlocks with the right key,
    // and re-supplies the corrupted keeper with its real shard.
    cluster.keepers.get(3)!.signal("SIGCONT");
    await cluster.waitUnlocked();
    const res = await getSecret(cluster, "payments/api");
    assert.equal(res.status, 200);
    assert.deepEqual(res.body?.data, { v: "kept" });
  } finally {
    await cluster.close();
  }
});

Deno.test("only nexus can read a keeper's shard", async () => {
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    await waitFor(
      "keeper 1 to hold a shard",
      async () => (await keeperShardStatus(cluster, 1)).status === 200,
    );
    await assert.rejects(
      cluster.request(
        "superuser",
        `${cluster.keeperUrl(1)}/v1/store/shard`,
        {},
        "keeper",
      ),
      "a pilot identity is refused at the TLS layer",
    );
    await cluster.issue("bootstrap", "spiffe://spike.ist/spike/bootstrap");
    const asBootstrap = await cluster.request(
      "bootstrap",
      `${cluster.keeperUrl(1)}/v1/store/shard`,
      {},
      "keeper",
    );
    assert.equal(asBootstrap.status, 401);
    assert.equal(asBootstrap.body?.err, "access_unauthorized");
    assert.equal(asBootstrap.body?.shard, undefined);
  } finally {
    await cluster.close();
  }
});

Deno.test("a restore pushes the shards to keepers once, not again when recovery notices", async () => {
  const cluster = await Cluster.create({
    keepers: 3,
    threshold: 2,
    keeperUpdateInterval: "1h",
    // The recovery loop wakes often, so a second push would come quickly.
    nexusEnv: { SPIKE_NEXUS_RECOVERY_MAX_INTERVAL: "200ms" },
  });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    const recover = await cluster.pilot("recover", ["operator", "recover"]);
    assert.equal(recover.code, 0, recover.stderr);
    await cluster.stopNexus();
    for (const i of [1, 2, 3]) await cluster.stopKeeper(i);
    await cluster.start();
    for (const i of [1, 2]) {
      const res = await cluster.pilot("restore", ["operator", "restore"], {
        stdin: await Deno.readTextFile(
          `${cluster.dir}/recover/spike.recovery.${i}.txt`,
        ),
      });
      assert.equal(res.code, 0, res.stderr);
    }
    await cluster.waitUnlocked();
    const log = cluster.nexus!.logFile;
    const pushes = async () =>
      (await Deno.readTextFile(log)).split("\n").filter((line) =>
        line.includes('"Shards pushed to keepers"')
      ).length;
    await waitFor("the restore's push", async () => await pushes() === 1);
    // Several recovery-loop wake-ups later, still the one push.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await pushes(), 1);
    assert.equal((await keeperShardStatus(cluster, 3)).status, 200);
  } finally {
    await cluster.close();
  }
});
