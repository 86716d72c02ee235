// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Keepers far away: each behind a delaying proxy that plays a WAN link
// (80 to 150 ms round trip, 1 % loss) and one black-holed. After a crash,
// nexus (and a replica on PostgreSQL) unlocks from the threshold fastest
// keepers while its call to the black-holed keeper still hangs; pushes to
// a slow or dead keeper never hold up requests. Asserted by what is still
// hanging, not by clocks; the times are printed (see the bench for
// numbers).
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import { ReplicaSet } from "../scripts/replicas.ts";
import { TcpProxy } from "../scripts/tcp_proxy.ts";
import { freshSchema, pg, testDatabaseUrl } from "./pg_support.ts";
import { waitFor } from "./reliability_support.ts";

const SECRETS = "/v1/store/secrets";
// One-way delays: 40, 50 and 75 ms (80, 100, 150 ms round trips).
const LINKS = [40, 50, 75];

async function wanCluster() {
  const cluster = await Cluster.create({
    keepers: 4,
    threshold: 2,
    logLevel: "INFO",
    keeperUpdateInterval: "1s",
  });
  const proxies = cluster.keeperPorts.map((port, i) =>
    TcpProxy.start({ hostname: "127.0.0.1", port }, {
      delayMs: LINKS[i] ?? 0,
      jitterMs: 5,
      loss: 0.01,
    })
  );
  const peers = proxies.map((p) => `https://127.0.0.1:${p.port}`).join(",");
  cluster.options.nexusEnv.SPIKE_NEXUS_KEEPER_PEERS = peers;
  // Long enough that a call to the black hole hangs for the whole test.
  cluster.options.nexusEnv.SPIKE_NEXUS_KEEPER_TIMEOUT = "120s";
  for (let i = 1; i <= 4; i++) await cluster.startKeeper(i);
  return { cluster, proxies, hole: proxies[3]! };
}

for (const backend of ["sqlite", "postgres"] as const) {
  Deno.test({
    name:
      `${backend}: after a crash nexus unlocks from the fastest keepers while the black-holed one hangs, and pushes never hold up requests`,
    ignore: backend === "postgres" && !pg,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const { cluster, proxies, hole } = await wanCluster();
      const set = backend === "postgres"
        ? new ReplicaSet(cluster, 2, testDatabaseUrl(await freshSchema()))
        : undefined;
      const call = (route: string, body: unknown) =>
        set
          ? set.call(1, "superuser", route, body)
          : cluster.call("superuser", route, body);
      const start = async () => {
        if (set) {
          await set.start(1);
          await set.waitUnlocked(1);
        } else {
          await cluster.startNexus();
          await cluster.waitUnlocked();
        }
      };
      const crash = () => set ? set.stop(1) : cluster.stopNexus();
      try {
        await start();
        if (set) {
          await set.start(2);
          await set.waitUnlocked(2);
        }
        assert.equal(
          (await call(SECRETS, { path: "far/db", values: { p: "1" } })).status,
          200,
        );

        hole.setMode("blackhole");
        await crash();
        const t0 = performance.now();
        await start();
        const unlockMs = performance.now() - t0;
        assert.ok(
          hole.hanging > 0,
          "unlocked while the call to the black-holed keeper still hangs",
        );
        const got = await call(`${SECRETS}?action=get`, { path: "far/db" });
        assert.deepEqual(got.body?.data, { p: "1" });

        // Pushes every second; each one to the black hole hangs. Requests
        // go on meanwhile, each answered while a push still hangs.
        await waitFor("a push to hang", () => hole.hanging > 1, 10_000, 50);
        for (let n = 0; n < 10; n++) {
          const before = hole.hanging;
          const res = await call(SECRETS, {
            path: "far/db",
            values: { p: `${n + 2}` },
          });
          assert.equal(res.status, 200);
          assert.ok(before > 0 && hole.hanging > 0);
        }
        console.log(
          `${backend}: restart to unlocked over 80/100/150 ms links with one keeper black-holed: ${
            unlockMs.toFixed(0)
          } ms (process start included)`,
        );
      } finally {
        await set?.close();
        for (const p of proxies) p.close();
        await cluster.close();
      }
    },
  });
}
