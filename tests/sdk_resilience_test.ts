// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The workload SDK when nexus is not there: killed and restarted during a
 * call, locked until its keepers return, one of two URLs dead or
 * black-holed, a URL serving something that is not nexus, and a deadline
 * that runs out. Real processes throughout.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Spike, SpikeLockedError, SpikeTransportError } from "../sdk/mod.ts";
import { freePort } from "../scripts/cluster.ts";
import {
  auditRecords,
  eventually,
  policyFor,
  startSdkCluster,
  TD,
} from "./sdk_support.ts";

const APP = `spiffe://${TD}/workload/app`;

/** A TCP server that accepts and never answers: a black-holed peer. */
function blackHole(): { url: string; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch {
      // Closed.
    }
  })();
  return {
    url: `https://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    close() {
      listener.close();
      for (const conn of held) conn.close();
    },
  };
}

Deno.test("workload SDK: restarts, locked nexus, failover and deadlines", async (t) => {
  const cluster = await startSdkCluster({ app: APP }, [
    policyFor("app-rw", APP, "apps/app/.*", ["read", "write"]),
  ]);
  const spike = await Spike.connect({
    nexusUrl: cluster.nexusUrl,
    source: { svidDir: cluster.svidDir("app") },
    retry: { deadlineMs: 60_000, initialDelayMs: 50, maxDelayMs: 500 },
  });
  const freezeKeepers = (signal: "SIGSTOP" | "SIGCONT") => {
    for (const i of [1, 2]) cluster.keepers.get(i)!.signal(signal);
  };
  try {
    await spike.put("apps/app/db", { password: "p1" });

    await t.step(
      "a call survives nexus killed and restarted under it",
      async () => {
        assert.equal(
          await spike.getValue("apps/app/db", "password", { as: "text" }),
          "p1",
        );
        // Frozen: the port stays open and the call hangs in flight.
        cluster.nexus!.signal("SIGSTOP");
        const call = spike.getValue("apps/app/db", "password", { as: "text" });
        await new Promise((r) => setTimeout(r, 300));
        await cluster.stopNexus("SIGKILL");
        await cluster.startNexus();
        assert.equal(await call, "p1");
      },
    );

    await t.step(
      "a write waits while nexus is locked, then lands once",
      async () => {
        await cluster.stopNexus("SIGKILL");
        // Frozen keepers keep their shards but do not answer: one keeper
        // of a threshold of two leaves nexus locked.
        freezeKeepers("SIGSTOP");
        await cluster.startNexus();
        await eventually(async () => {
          const res = await cluster.call(
            "superuser",
            "/v1/store/secrets?action=list",
          )
            .catch(() => undefined);
          return res?.status === 503;
        }, "a locked nexus");
        const before = (await auditRecords(cluster)).length;
        const write = spike.put("apps/app/db", { password: "p2" });
        await eventually(async () => {
          const locked = (await auditRecords(cluster)).slice(before)
            .filter((r) => r.caller === APP && r.status === 503);
          return locked.length >= 2;
        }, "the write retried against the locked nexus");
        freezeKeepers("SIGCONT");
        await write;
        const writes = (await auditRecords(cluster)).slice(before)
          .filter((r) => r.caller === APP && r.status === 200);
        assert.equal(writes.length, 1, "the write was applied once");
        const meta = await spike.metadata("apps/app/db");
        assert.equal(meta.currentVersion, 2);
      },
    );

    await t.step(
      "the deadline ends a call to a locked nexus with a locked error",
      async () => {
        await cluster.stopNexus("SIGKILL");
        freezeKeepers("SIGSTOP");
        await cluster.startNexus();
        const error = await spike.get("apps/app/db", { deadlineMs: 1_500 })
          .catch((e) => e);
        assert.ok(error instanceof SpikeLockedError, String(error));
        assert.equal(error.code, "state_not_ready");
        freezeKeepers("SIGCONT");
        await cluster.waitUnlocked();
      },
    );

    await t.step(
      "the deadline ends a call to a dead nexus with a transport error",
      async () => {
        const lone = await Spike.connect({
          nexusUrl: `https://127.0.0.1:${freePort()}`,
          source: { svidDir: cluster.svidDir("app") },
          retry: { deadlineMs: 800, initialDelayMs: 50 },
        });
        try {
          const error = await lone.get("apps/app/db").catch((e) => e);
          assert.ok(error instanceof SpikeTransportError, String(error));
          assert.equal(error.code, "net_peer_connection");
          assert.equal(error.outcomeUnknown, false);
        } finally {
          await lone.close();
        }
      },
    );

    await t.step("failover: the first URL is dead", async () => {
      const dead = `https://127.0.0.1:${freePort()}`;
      const two = await Spike.connect({
        nexusUrl: [dead, cluster.nexusUrl],
        source: { svidDir: cluster.svidDir("app") },
      });
      try {
        assert.equal(
          await two.getValue("apps/app/db", "password", { as: "text" }),
          "p2",
        );
        // A write fails over too: the dead URL never saw it.
        await two.put("apps/app/failover", { k: "v" });
        assert.equal(
          await two.getValue("apps/app/failover", "k", { as: "text" }),
          "v",
        );
      } finally {
        await two.close();
      }
    });

    await t.step("failover: the first URL is black-holed", async () => {
      const hole = blackHole();
      const two = await Spike.connect({
        nexusUrl: [hole.url, cluster.nexusUrl],
        source: { svidDir: cluster.svidDir("app") },
        attemptTimeoutMs: 1_000,
      });
      try {
        assert.equal(
          await two.getValue("apps/app/db", "password", { as: "text" }),
          "p2",
        );
        await two.put("apps/app/failover", { k: "w" });
        // The client now starts at the URL that answered.
        assert.equal(
          await two.getValue("apps/app/failover", "k", { as: "text" }),
          "w",
        );
      } finally {
        await two.close();
        hole.close();
      }
    });

    await t.step(
      "a server that is not nexus is refused, not retried",
      async () => {
        const keeper = await Spike.connect({
          nexusUrl: cluster.keeperUrl(3),
          source: { svidDir: cluster.svidDir("app") },
          retry: { deadlineMs: 30_000 },
        });
        try {
          const error = await keeper.get("apps/app/db").catch((e) => e);
          assert.ok(error instanceof SpikeTransportError, String(error));
          assert.match(error.message, /not authorized/);
        } finally {
          await keeper.close();
        }
      },
    );
  } finally {
    await spike.close();
    await cluster.close();
  }
});
