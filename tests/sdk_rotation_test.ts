// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * SVID rotation under a live SDK session, from an SVID directory and from
 * the Workload API (a real gRPC agent on a unix socket): calls keep
 * succeeding while the identity changes, and the new identity's policies
 * apply at once. The rotation swaps SPIFFE IDs so that the test sees which
 * certificate nexus was shown.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Spike, SpikeDeniedError } from "../sdk/mod.ts";
import { DevWorkloadAgent, svidResponse } from "../scripts/dev_agent.ts";
import type { Cluster } from "../scripts/cluster.ts";
import { eventually, policyFor, startSdkCluster, TD } from "./sdk_support.ts";

const ROT1 = `spiffe://${TD}/workload/rot-1`;
const ROT2 = `spiffe://${TD}/workload/rot-2`;

/** Reads the shared secret in a loop and counts outcomes. */
function readLoop(spike: Spike) {
  const stats = { ok: 0, errors: [] as unknown[] };
  let running = true;
  const done = (async () => {
    while (running) {
      try {
        const v = await spike.getValue("apps/rot/common", "v", { as: "text" });
        assert.equal(v, "shared");
        stats.ok++;
      } catch (e) {
        stats.errors.push(e);
      }
    }
  })();
  return {
    stats,
    async stop() {
      running = false;
      await done;
    },
  };
}

async function expectIdentity(spike: Spike, id: string, other: string) {
  await eventually(() => spike.spiffeId === id, `the SDK to present ${id}`);
  const mine = id === ROT1 ? "one" : "two";
  const theirs = id === ROT1 ? "two" : "one";
  assert.equal(
    await spike.getValue(`apps/rot/${mine}`, "v", { as: "text" }),
    mine,
  );
  const denied = await spike.get(`apps/rot/${theirs}`).catch((e) => e);
  assert.ok(denied instanceof SpikeDeniedError, String(denied));
  assert.match(denied.message, new RegExp(id.split("/").at(-1)!));
  assert.ok(!denied.message.includes(other));
}

async function setup(): Promise<Cluster> {
  const cluster = await startSdkCluster({ rot: ROT1 }, [
    {
      name: "rot-common",
      spiffeidPattern: `spiffe://spike\\.ist/workload/rot-[12]`,
      pathPattern: "apps/rot/common",
      permissions: ["read"],
    },
    policyFor("rot-one", ROT1, "apps/rot/one", ["read"]),
    policyFor("rot-two", ROT2, "apps/rot/two", ["read"]),
  ]);
  for (
    const [path, v] of [["common", "shared"], ["one", "one"], ["two", "two"]]
  ) {
    const res = await cluster.call("superuser", "/v1/store/secrets", {
      path: `apps/rot/${path}`,
      values: { v },
    });
    assert.equal(res.status, 200);
  }
  return cluster;
}

Deno.test("workload SDK: SVID directory rotation mid-session", async () => {
  const cluster = await setup();
  const spike = await Spike.connect({
    nexusUrl: cluster.nexusUrl,
    source: { svidDir: cluster.svidDir("rot") },
  });
  try {
    await expectIdentity(spike, ROT1, ROT2);
    const loop = readLoop(spike);
    await eventually(() => loop.stats.ok > 5, "reads before the rotation");
    await cluster.issue("rot", ROT2);
    await expectIdentity(spike, ROT2, ROT1);
    const atRotation = loop.stats.ok;
    await eventually(() => loop.stats.ok > atRotation + 5, "reads after");
    await cluster.issue("rot", ROT1);
    await expectIdentity(spike, ROT1, ROT2);
    await loop.stop();
    assert.deepEqual(loop.stats.errors, []);
  } finally {
    await spike.close();
    await cluster.close();
  }
});

Deno.test("workload SDK: Workload API rotation and agent restart mid-session", async () => {
  const cluster = await setup();
  const socketDir = await Deno.makeTempDir({ prefix: "spike-sdk-agent-" });
  const socket = `${socketDir}/agent.sock`;
  const first = await svidResponse(cluster.ca, ROT1);
  let agent = await DevWorkloadAgent.start(socket, (call) => call.write(first));
  const spike = await Spike.connect({
    nexusUrl: cluster.nexusUrl,
    source: { endpoint: `unix://${socket}` },
  });
  try {
    await expectIdentity(spike, ROT1, ROT2);
    const loop = readLoop(spike);
    await eventually(() => loop.stats.ok > 5, "reads before the rotation");
    const second = await svidResponse(cluster.ca, ROT2);
    agent.push(second);
    await expectIdentity(spike, ROT2, ROT1);

    // The agent goes away: calls go on with the SVID in hand, and the
    // stream comes back when a new agent listens.
    agent.stop();
    await Deno.remove(socket).catch(() => {});
    const atStop = loop.stats.ok;
    await eventually(() => loop.stats.ok > atStop + 5, "reads without agent");
    const third = await svidResponse(cluster.ca, ROT1);
    agent = await DevWorkloadAgent.start(socket, (call) => call.write(third));
    await expectIdentity(spike, ROT1, ROT2);
    await loop.stop();
    assert.deepEqual(loop.stats.errors, []);
  } finally {
    await spike.close();
    agent.stop();
    await cluster.close();
    await Deno.remove(socketDir, { recursive: true });
  }
});
