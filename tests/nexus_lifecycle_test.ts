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
        // Three keepers answer at once: one unlock, said once.
        const log = await Deno.readTextFile(cluster.nexus!.logFile);
        assert.equal(log.split("Root key recovered from keepers").length, 2);
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
    await assert.rejects(
      cluster.request(
        "bootstrap",
        `${cluster.keeperUrl(1)}/v1/store/shard`,
        {},
        "keeper",
      ),
      "a bootstrap identity is refused at the TLS layer",
    );
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

async function exitOf(cluster: Cluster, timeoutMs = 20_000) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const status = await Promise.race([
    cluster.nexus!.status,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Nexus still runs after ${timeoutMs} ms`)),
        timeoutMs,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  return {
    code: status.code,
    log: await Deno.readTextFile(cluster.nexus!.logFile),
  };
}

async function heldShards(cluster: Cluster, count: number) {
  const held = [];
  for (let i = 1; i <= count; i++) {
    held.push(JSON.stringify((await keeperShardStatus(cluster, i)).body));
  }
  return held;
}

Deno.test("nexus on an empty data folder refuses to overwrite the shards keepers hold", async () => {
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    await putSecret(cluster, "apps/db", "kept");
    const before = await heldShards(cluster, 3);
    await cluster.stopNexus();
    // The data folder is not there (an unmounted volume, a typo).
    await Deno.rename(cluster.dataDir, `${cluster.dataDir}.away`);
    await cluster.startNexus({ mayExit: true });
    const { code, log } = await exitOf(cluster);
    assert.equal(code, 1);
    assert.match(
      log,
      /The store is empty but keeper \d \(https:\/\/.*\) already holds a shard/,
    );
    assert.match(log, /SPIKE_NEXUS_DATA_DIR/);
    assert.deepEqual(await heldShards(cluster, 3), before);

    await Deno.remove(cluster.dataDir, { recursive: true });
    await Deno.rename(`${cluster.dataDir}.away`, cluster.dataDir);
    await cluster.startNexus();
    await cluster.waitUnlocked();
    assert.deepEqual((await getSecret(cluster, "apps/db")).body?.data, {
      v: "kept",
    });
  } finally {
    await cluster.close();
  }
});

Deno.test("a new store refuses a keeper that comes up late holding another key's shard", async () => {
  const cluster = await Cluster.create({ keepers: 3, threshold: 3 });
  try {
    await cluster.startKeeper(1);
    await cluster.startKeeper(2);
    await cluster.startNexus();
    await waitFor(
      "nexus to wait for the third keeper",
      async () =>
        (await Deno.readTextFile(cluster.nexus!.logFile)).includes(
          "Waiting for keepers to take the new root key's shards",
        ),
    );
    await cluster.startKeeper(3);
    const foreign = Array.from({ length: 32 }, (_, i) => (i * 37 + 11) % 256);
    const put = await cluster.request(
      "nexus",
      `${cluster.keeperUrl(3)}/v1/store/contribute`,
      { shard: foreign, index: 3 },
      "keeper",
    );
    assert.equal(put.status, 200);
    const { code, log } = await exitOf(cluster);
    assert.equal(code, 1);
    assert.match(log, /keeper 3 \(https:\/\/.*\) already holds a shard/);
  } finally {
    await cluster.close();
  }
});

Deno.test("a new store refuses one keeper listed twice under two names", async () => {
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  try {
    const [p1, p2] = cluster.keeperPorts;
    cluster.options.nexusEnv.SPIKE_NEXUS_KEEPER_PEERS =
      `https://127.0.0.1:${p1},https://localhost:${p1},https://127.0.0.1:${p2}`;
    await cluster.start({ mayExit: true });
    const { code, log } = await exitOf(cluster);
    assert.equal(code, 1);
    assert.match(log, /listed twice in SPIKE_NEXUS_KEEPER_PEERS/);
  } finally {
    await cluster.close();
  }
});

Deno.test("nexus unlocks from keepers listed in another order and gives each its new share", async () => {
  const cluster = await Cluster.create({ keepers: 3, threshold: 3 });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    await putSecret(cluster, "apps/db", "kept");
    await cluster.stopNexus();
    const urls = [1, 2, 3].map((i) => cluster.keeperUrl(i));
    cluster.options.nexusEnv.SPIKE_NEXUS_KEEPER_PEERS = [
      urls[1],
      urls[0],
      urls[2],
    ]
      .join(",");
    await cluster.startNexus();
    await cluster.waitUnlocked();
    assert.deepEqual((await getSecret(cluster, "apps/db")).body?.data, {
      v: "kept",
    });
    const log = await Deno.readTextFile(cluster.nexus!.logFile);
    assert.match(log, /check the order of SPIKE_NEXUS_KEEPER_PEERS/);
    // Keeper 2 now sits at position 1 and holds share 1.
    await waitFor(
      "the keepers to hold the shares of their new positions",
      async () => {
        const body = (await keeperShardStatus(cluster, 2)).body;
        return body?.index === 1;
      },
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("an unlock from the keepers forgets an operator's partial restore", async () => {
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    const recover = await cluster.pilot("recover", ["operator", "recover"]);
    assert.equal(recover.code, 0, recover.stderr);
    await cluster.stopNexus();
    for (const i of [1, 2]) cluster.keepers.get(i)!.signal("SIGSTOP");
    await cluster.startNexus();
    const restore = await cluster.pilot("restore", ["operator", "restore"], {
      stdin: await Deno.readTextFile(
        `${cluster.dir}/recover/spike.recovery.3.txt`,
      ),
    });
    assert.equal(restore.code, 0, restore.stderr);
    const collected = async () => {
      const body = (await cluster.call("superuser", "/v1/operator/status"))
        .body as { restore?: { collected?: number } } | undefined;
      return body?.restore?.collected;
    };
    assert.equal(await collected(), 1);
    for (const i of [1, 2]) cluster.keepers.get(i)!.signal("SIGCONT");
    await cluster.waitUnlocked();
    await waitFor(
      "the partial restore to be forgotten",
      async () => await collected() === 0,
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("status with probe reports each keeper as it is now, not as of the last push", async () => {
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    const keeper2 = async () => {
      const body = (await cluster.call("superuser", "/v1/operator/status", {
        probe: true,
      })).body as { keepers: { reachable: unknown; holdsShard: unknown }[] };
      const { reachable, holdsShard } = body.keepers[1]!;
      return { reachable, holdsShard };
    };
    assert.deepEqual(await keeper2(), { reachable: true, holdsShard: true });
    await cluster.stopKeeper(2);
    assert.deepEqual(await keeper2(), { reachable: false, holdsShard: null });
    // Back empty: the probe finds it without its share, and nexus gives it
    // back before answering.
    await cluster.startKeeper(2);
    assert.deepEqual(await keeper2(), { reachable: true, holdsShard: true });
    assert.equal((await keeperShardStatus(cluster, 2)).status, 200);
  } finally {
    await cluster.close();
  }
});
