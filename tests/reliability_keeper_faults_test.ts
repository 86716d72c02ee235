// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Keeper faults with real processes: keepers killed, restarted empty,
// frozen and fed a wrong shard at random, while nexus runs and restarts.
// Nexus must never use a wrong key (every earlier secret reads back, every
// keeper ends up with its original share), must unlock whenever threshold
// keepers hold shards and stay locked otherwise, and must re-hydrate every
// restarted keeper.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import {
  Prng,
  sized,
  sleep,
  SpikeClient,
  testSeed,
  waitFor,
} from "./reliability_support.ts";

const KEEPERS = [1, 2, 3];

/** Keeper `i`'s shard as nexus would read it, or undefined when empty. */
async function shardOf(
  cluster: Cluster,
  i: number,
): Promise<number[] | undefined> {
  const res = await cluster.request(
    "nexus",
    `${cluster.keeperUrl(i)}/v1/store/shard`,
    {},
    "keeper",
  );
  if (res.status === 404) return undefined;
  assert.equal(res.status, 200, `keeper ${i} shard: ${res.status}`);
  return res.body?.shard as number[];
}

async function isLocked(cluster: Cluster): Promise<boolean> {
  const res = await cluster.call("superuser", "/v1/operator/status");
  return res.status === 200 && res.body?.state === "locked";
}

Deno.test("keepers killed, frozen and corrupted at random: nexus never uses a wrong key and re-hydrates them", async () => {
  const rounds = sized(6, 40);
  const prng = new Prng(testSeed("keeper fault rounds"));
  const cluster = await Cluster.create({
    keepers: 3,
    threshold: 2,
    logLevel: "WARN",
    keeperUpdateInterval: "300ms",
  });
  let client: SpikeClient | undefined;
  const written: string[] = [];
  const counts: Record<string, number> = {};
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    const original = new Map<number, number[]>();
    for (const i of KEEPERS) {
      await waitFor(`keeper ${i} shard`, async () => {
        const shard = await shardOf(cluster, i);
        if (shard) original.set(i, shard);
        return shard !== undefined;
      });
    }
    client = await SpikeClient.open(
      cluster.svidDir("superuser"),
      cluster.nexusUrl,
    );
    const c = client;

    const write = async (round: number) => {
      const path = `keeper-faults/r${round}`;
      const res = await c.post("/v1/store/secrets", {
        path,
        values: { round: String(round) },
      });
      assert.equal(res.status, 200);
      written.push(path);
    };
    const everythingReads = async () => {
      for (const path of written) {
        const res = await c.post("/v1/store/secrets?action=get", { path });
        assert.equal(res.status, 200, `${path} after recovery: ${res.status}`);
        assert.equal(
          (res.json?.data as Record<string, string>).round,
          path.slice("keeper-faults/r".length),
        );
      }
    };
    const rehydrated = (i: number) =>
      waitFor(`keeper ${i} to get its own shard back`, async () => {
        const shard = await shardOf(cluster, i);
        if (shard === undefined) return false;
        // A different share would mean nexus pushed another key's shards.
        assert.deepEqual(shard, original.get(i), `keeper ${i} shard changed`);
        return true;
      }, 15_000);
    const restartNexus = async () => {
      await cluster.stopNexus("SIGKILL");
      await cluster.startNexus();
    };

    const scenarios: Record<string, () => Promise<void>> = {
      // A keeper dies and comes back empty while nexus runs.
      "keeper restart": async () => {
        const k = prng.pick(KEEPERS);
        await cluster.stopKeeper(k, "SIGKILL");
        await sleep(prng.int(0, 400));
        await cluster.startKeeper(k);
        await rehydrated(k);
      },
      // Nexus restarts while one keeper is down: two shards suffice.
      "nexus restart, one keeper down": async () => {
        const k = prng.pick(KEEPERS);
        await cluster.stopKeeper(k, "SIGKILL");
        await restartNexus();
        await cluster.waitUnlocked();
        await everythingReads();
        await cluster.startKeeper(k);
        await rehydrated(k);
      },
      // One keeper empty, one frozen: below threshold nexus stays locked,
      // and unlocks as soon as the frozen one answers.
      "nexus restart below threshold": async () => {
        const a = prng.pick(KEEPERS);
        const frozen = prng.pick(KEEPERS.filter((i) => i !== a));
        await cluster.stopNexus("SIGKILL");
        await cluster.stopKeeper(a, "SIGKILL");
        await cluster.startKeeper(a);
        cluster.keepers.get(frozen)!.signal("SIGSTOP");
        try {
          await cluster.startNexus();
          await sleep(1_200);
          assert.ok(await isLocked(cluster), "one shard must not unlock");
          const blocked = await c.post("/v1/store/secrets?action=list");
          assert.equal(blocked.status, 503);
        } finally {
          cluster.keepers.get(frozen)!.signal("SIGCONT");
        }
        await cluster.waitUnlocked();
        await everythingReads();
        await rehydrated(a);
      },
      // A keeper dies while nexus is recovering from the keepers.
      "keeper killed during recovery": async () => {
        const k = prng.pick(KEEPERS);
        await cluster.stopNexus("SIGKILL");
        const started = cluster.startNexus();
        await sleep(prng.int(0, 300));
        await cluster.stopKeeper(k, "SIGKILL");
        await started;
        await cluster.startKeeper(k);
        await cluster.waitUnlocked();
        await everythingReads();
        await rehydrated(k);
      },
      // A keeper holds a wrong share when nexus restarts.
      "corrupted keeper": async () => {
        const k = prng.pick(KEEPERS);
        const bogus = Array.from(prng.bytes(32), (b) => b | 1);
        const put = await cluster.request(
          "nexus",
          `${cluster.keeperUrl(k)}/v1/store/contribute`,
          { shard: bogus, index: k },
          "keeper",
        );
        assert.equal(put.status, 200);
        await restartNexus();
        await cluster.waitUnlocked();
        await everythingReads();
        await rehydrated(k);
      },
    };

    const names = Object.keys(scenarios);
    for (let round = 1; round <= rounds; round++) {
      await write(round);
      // Every scenario runs at least once; the rest are drawn at random.
      const name = round <= names.length ? names[round - 1]! : prng.pick(names);
      counts[name] = (counts[name] ?? 0) + 1;
      await scenarios[name]!();
      await everythingReads();
    }
    for (const i of KEEPERS) {
      assert.deepEqual(await shardOf(cluster, i), original.get(i));
    }
    console.log(`${rounds} keeper fault rounds: ${JSON.stringify(counts)}`);
  } finally {
    await client?.close();
    await cluster.close();
  }
});
