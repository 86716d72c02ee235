// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Rekey 3/2 -> 5/3 with real processes: the keeper list grows in the
// configuration (nexus restarts, the store keeps its split until the
// rekey), then nexus, and two keepers, are killed at the worst moments of
// the two-phase push. Each time nexus comes back with the old key or with
// the new one, never locked; no acknowledged write is lost; recovery
// shards of a replaced key no longer restore the store.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Cluster } from "../scripts/cluster.ts";
import { type Shard, verifyShard } from "../lib/shard/mod.ts";
import { sleep, SpikeClient, waitFor } from "./reliability_support.ts";
import { TcpProxy } from "../scripts/tcp_proxy.ts";

const SECRETS = "/v1/store/secrets";
const BEFORE = 12;

interface Rig {
  cluster: Cluster;
  proxies: TcpProxy[];
  close(): Promise<void>;
}

/** Lists keepers 1..n (through their proxies) with a split of t of n. */
function listKeepers(rig: Rig, n: number, t: number): void {
  const env = rig.cluster.options.nexusEnv;
  env.SPIKE_NEXUS_KEEPER_PEERS = rig.proxies.slice(0, n)
    .map((p) => `https://127.0.0.1:${p.port}`).join(",");
  env.SPIKE_NEXUS_SHAMIR_SHARES = String(n);
  env.SPIKE_NEXUS_SHAMIR_THRESHOLD = String(t);
}

/**
 * Five keepers behind proxies; a store made with keepers 1..3 at 2 of 3,
 * holding some secrets and its recovery files; then all five listed and
 * nexus restarted, unlocked with the store's 3/2 split.
 */
async function rig(extraEnv: Record<string, string> = {}): Promise<Rig> {
  const cluster = await Cluster.create({
    keepers: 5,
    threshold: 2,
    keeperUpdateInterval: "2s",
    nexusEnv: { SPIKE_NEXUS_KEEPER_TIMEOUT: "3s", ...extraEnv },
  });
  const proxies: TcpProxy[] = [];
  const r: Rig = {
    cluster,
    proxies,
    async close() {
      await cluster.close();
      for (const p of proxies) p.close();
    },
  };
  try {
    for (let i = 1; i <= 5; i++) {
      await cluster.startKeeper(i);
      proxies.push(
        TcpProxy.start({
          hostname: "127.0.0.1",
          port: cluster.keeperPorts[i - 1]!,
        }),
      );
    }
    listKeepers(r, 3, 2);
    await cluster.startNexus();
    await cluster.waitUnlocked();
    for (let i = 0; i < BEFORE; i++) {
      for (const v of ["1", "2"]) {
        const res = await cluster.call("superuser", SECRETS, {
          path: `app/${i}`,
          values: { v, i: String(i) },
        });
        assert.equal(res.status, 200);
      }
    }
    assert.equal(
      (await cluster.pilot("recover", ["operator", "recover"])).code,
      0,
    );
    listKeepers(r, 5, 3);
    await cluster.stopNexus("SIGTERM");
    await cluster.startNexus();
    await cluster.waitUnlocked();
    const status = (await cluster.call("superuser", "/v1/operator/status", {}))
      .body!;
    // The store keeps its split until the rekey.
    assert.equal(status.shares, 3);
    assert.equal(status.threshold, 2);
    assert.deepEqual(status.configured, { shares: 5, threshold: 3 });
    return r;
  } catch (e) {
    await r.close();
    throw e;
  }
}

/** What keeper `i` holds, asked directly (past its proxy) as nexus. */
async function held(
  cluster: Cluster,
  i: number,
): Promise<{ current?: Shard; pending?: Shard }> {
  const res = await cluster.request(
    "nexus",
    `${cluster.keeperUrl(i)}/v1/store/shard`,
    {},
    "keeper",
  );
  if (res.status === 404) return {};
  const body = res.body as Record<string, unknown>;
  const shard = (value: unknown): Shard | undefined => {
    const v = value as { shard?: number[]; index?: number } | undefined;
    return v?.shard
      ? { index: v.index!, value: new Uint8Array(v.shard) }
      : undefined;
  };
  const current = shard(body);
  const pending = shard(body.pending);
  return {
    ...(current ? { current } : {}),
    ...(pending ? { pending } : {}),
  };
}

/** The store as nexus wrote it: meta and a pending root key, if any. */
function stored(cluster: Cluster) {
  const db = new DatabaseSync(`${cluster.dataDir}/spike.db`, {
    readOnly: true,
  });
  try {
    const meta = db.prepare(
      "SELECT store_id, key_check, threshold, share_count FROM meta",
    ).get() as Record<string, Uint8Array & number>;
    const commitments = (db.prepare(
      "SELECT commitment FROM shard_commitments ORDER BY share_index",
    ).all() as { commitment: Uint8Array }[]).map((r) => r.commitment);
    const hasPending = db.prepare(
      "SELECT 1 FROM sqlite_master WHERE name = 'pending_root_key'",
    ).get() !== undefined;
    const pending = hasPending
      ? db.prepare("SELECT key_check, commitments FROM pending_root_key")
        .get() as { key_check: Uint8Array; commitments: string } | undefined
      : undefined;
    return {
      storeId: meta.store_id as Uint8Array,
      keyCheck: meta.key_check as Uint8Array,
      threshold: meta.threshold as number,
      shares: meta.share_count as number,
      commitments,
      pending: pending && {
        keyCheck: pending.key_check,
        commitments: (JSON.parse(pending.commitments) as string[]).map((c) =>
          Uint8Array.fromBase64(c)
        ),
      },
    };
  } finally {
    db.close();
  }
}

/** Writes versions to one path with compare-and-set until stopped. */
function writer(cluster: Cluster, path: string) {
  const state = {
    acked: 0,
    stop: false,
    client: undefined as SpikeClient | undefined,
  };
  const done = (async () => {
    state.client = await SpikeClient.open(
      cluster.svidDir("superuser"),
      cluster.nexusUrl,
      { role: "nexus", timeoutMs: 5_000 },
    );
    while (!state.stop) {
      try {
        const res = await state.client.post(SECRETS, {
          path,
          values: { n: String(state.acked + 1) },
          cas: state.acked,
        });
        if (res.status === 200) state.acked++;
        else await sleep(50);
      } catch {
        await sleep(50);
      }
    }
    await state.client.close();
  })();
  return {
    state,
    async stop() {
      state.stop = true;
      await done;
    },
  };
}

async function readsBack(cluster: Cluster): Promise<void> {
  for (let i = 0; i < BEFORE; i++) {
    const latest = await cluster.call("superuser", `${SECRETS}?action=get`, {
      path: `app/${i}`,
    });
    assert.equal(latest.status, 200, `app/${i}`);
    assert.deepEqual(latest.body?.data, { v: "2", i: String(i) });
    const first = await cluster.call("superuser", `${SECRETS}?action=get`, {
      path: `app/${i}`,
      version: 1,
    });
    assert.deepEqual(first.body?.data, { v: "1", i: String(i) });
  }
}

async function checkWriter(cluster: Cluster, path: string, acked: number) {
  const meta = await cluster.call(
    "superuser",
    `${SECRETS}/metadata?action=get`,
    { path },
  );
  const current = (meta.body?.metadata as { currentVersion: number })
    .currentVersion;
  // Every acknowledged write is there; one more may have landed unanswered.
  assert.ok(current >= acked && current <= acked + 1, `${current} vs ${acked}`);
}

async function drillOldFiles(cluster: Cluster): Promise<number> {
  return (await cluster.pilot("restore", ["operator", "drill"])).code;
}

function startRekey(cluster: Cluster) {
  return cluster.pilot(
    "superuser",
    ["operator", "rekey", "--shares", "5", "--threshold", "3"],
    { env: { SPIKE_HTTP_CLIENT_TIMEOUT: "120s" } },
  );
}

Deno.test({
  name:
    "rekey 3/2 -> 5/3: nexus and two new keepers killed while the new shards spread; nexus comes back with the old key, and a second rekey succeeds",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const r = await rig();
    const { cluster, proxies } = r;
    try {
      const write = writer(cluster, "live/a");
      await waitFor("writes", () => write.state.acked >= 3);
      // Keeper 5 hears nothing: the rekey cannot reach its commit.
      proxies[4]!.setMode("blackhole");
      const rekey = startRekey(cluster);
      await waitFor("the pending key and shards on keepers 1..4", async () => {
        if (!stored(cluster).pending) return false;
        for (const i of [1, 2, 3, 4]) {
          if (!(await held(cluster, i)).pending) return false;
        }
        return true;
      }, 30_000);
      await write.stop();
      await cluster.stopNexus("SIGKILL");
      await cluster.stopKeeper(4);
      await cluster.stopKeeper(5);
      assert.notEqual((await rekey).code, 0);
      proxies[4]!.setMode("forward");
      await cluster.startKeeper(4);
      await cluster.startKeeper(5);
      await cluster.startNexus();
      await cluster.waitUnlocked();
      const status =
        (await cluster.call("superuser", "/v1/operator/status", {}))
          .body!;
      assert.equal(status.shares, 3);
      assert.equal(status.threshold, 2);
      assert.equal(stored(cluster).pending, undefined);
      await readsBack(cluster);
      await checkWriter(cluster, "live/a", write.state.acked);
      assert.equal(await drillOldFiles(cluster), 0);
      // The next push drops the abandoned pending shards.
      await waitFor("keepers 1..3 to drop their pending shards", async () => {
        for (const i of [1, 2, 3]) {
          const h = await held(cluster, i);
          if (h.pending || !h.current) return false;
        }
        return true;
      });

      const again = await startRekey(cluster);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /3 of 5 shards restore it \(was 2 of 3\)/);
      assert.match(again.stdout, /NO LONGER restore/);
      assert.match(again.stdout, /spike pilot operator recover/);
      const after = stored(cluster);
      assert.equal(after.shares, 5);
      assert.equal(after.threshold, 3);
      for (let i = 1; i <= 5; i++) {
        const h = await held(cluster, i);
        assert.ok(h.current && !h.pending, `keeper ${i}`);
        assert.ok(
          await verifyShard(after.storeId, h.current, after.commitments),
          `keeper ${i} holds its new shard`,
        );
      }
      assert.notEqual(await drillOldFiles(cluster), 0);
      const status2 =
        (await cluster.call("superuser", "/v1/operator/status", {}))
          .body!;
      assert.equal(
        (status2.rootKey as { recoveryExported: unknown }).recoveryExported,
        null,
      );
      assert.equal(
        (await cluster.pilot("recover", ["operator", "recover"])).code,
        0,
      );
      assert.equal(await drillOldFiles(cluster), 0);
      await readsBack(cluster);
    } finally {
      await r.close();
    }
  },
});

Deno.test({
  name:
    "rekey 3/2 -> 5/3: nexus and two old keepers killed once every keeper holds its new shard but before the commit; nexus finishes the rekey from the pending shards",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const r = await rig();
    const { cluster, proxies } = r;
    try {
      // Keeper 5 takes its pending shard, but nexus never hears so.
      proxies[4]!.setMode("requests-only");
      const oldKey = stored(cluster).keyCheck;
      const rekey = startRekey(cluster);
      await waitFor("every keeper to hold its pending shard", async () => {
        if (!stored(cluster).pending) return false;
        for (let i = 1; i <= 5; i++) {
          if (!(await held(cluster, i)).pending) return false;
        }
        return true;
      }, 40_000);
      await cluster.stopNexus("SIGKILL");
      await cluster.stopKeeper(1);
      await cluster.stopKeeper(2);
      assert.notEqual((await rekey).code, 0);
      // The old key now has one holder of two needed: only the new key,
      // pending on keepers 3, 4 and 5, can unlock.
      proxies[4]!.setMode("forward");
      await cluster.startNexus();
      await cluster.waitUnlocked();
      const after = stored(cluster);
      assert.equal(after.pending, undefined);
      assert.equal(after.shares, 5);
      assert.equal(after.threshold, 3);
      assert.notDeepEqual(after.keyCheck, oldKey);
      await readsBack(cluster);
      assert.notEqual(await drillOldFiles(cluster), 0);
      // Keepers 1 and 2 come back empty and get their new shards.
      await cluster.startKeeper(1);
      await cluster.startKeeper(2);
      await waitFor("every keeper to hold its new shard", async () => {
        for (let i = 1; i <= 5; i++) {
          const h = await held(cluster, i);
          if (
            !h.current || h.pending ||
            !await verifyShard(after.storeId, h.current, after.commitments)
          ) return false;
        }
        return true;
      }, 30_000);
    } finally {
      await r.close();
    }
  },
});

Deno.test({
  name:
    "rekey 3/2 -> 5/3: nexus killed right after the commit, before any keeper has its new shard as current, and two keepers with it; nexus unlocks with the new key from pending shards",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const r = await rig({
      SPIKE_NEXUS_KEEPER_TIMEOUT: "30s",
      SPIKE_NEXUS_REKEY_TIMEOUT: "90s",
    });
    const { cluster, proxies } = r;
    try {
      const write = writer(cluster, "live/c");
      await waitFor("writes", () => write.state.acked >= 3);
      // Slow links: the second phase's pushes take seconds to arrive,
      // and a killed nexus's bytes in flight are lost with it.
      for (const p of proxies) p.setLink({ delayMs: 1_500, dropOnClose: true });
      const rekey = startRekey(cluster);
      const log = cluster.nexus!.logFile;
      await waitFor(
        "the commit",
        async () =>
          /Root key replaced \(rekey\)/.test(await Deno.readTextFile(log)),
        90_000,
        10,
      );
      await cluster.stopNexus("SIGKILL");
      for (const p of proxies) p.setLink({});
      await write.stop();
      assert.notEqual((await rekey).code, 0);
      const after = stored(cluster);
      assert.equal(after.pending, undefined);
      assert.equal(after.shares, 5);
      // The worst moment: no keeper holds the new key as current.
      for (let i = 1; i <= 5; i++) {
        const h = await held(cluster, i);
        assert.ok(h.pending, `keeper ${i} holds its pending shard`);
        assert.ok(
          await verifyShard(after.storeId, h.pending, after.commitments),
        );
        assert.ok(
          !h.current ||
            !await verifyShard(after.storeId, h.current, after.commitments),
          `keeper ${i} has no new current shard yet`,
        );
      }
      await cluster.stopKeeper(1);
      await cluster.stopKeeper(2);
      await cluster.startNexus();
      await cluster.waitUnlocked();
      const status =
        (await cluster.call("superuser", "/v1/operator/status", {}))
          .body!;
      assert.equal(status.shares, 5);
      assert.equal(status.threshold, 3);
      await readsBack(cluster);
      await checkWriter(cluster, "live/c", write.state.acked);
      assert.notEqual(await drillOldFiles(cluster), 0);
      for (const i of [3, 4, 5]) {
        await waitFor(
          `keeper ${i} to hold its new shard as current`,
          async () => {
            const h = await held(cluster, i);
            return h.current !== undefined && !h.pending &&
              await verifyShard(after.storeId, h.current, after.commitments);
          },
        );
      }
    } finally {
      await r.close();
    }
  },
});
