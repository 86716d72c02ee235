// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Network faults between nexus and its keepers. Keepers that accept and
// never answer, trickle their answer, talk garbage or never finish the TLS
// handshake: nexus unlocks and keeps the good keepers supplied, and gives up
// on each bad call within SPIKE_NEXUS_KEEPER_TIMEOUT. Where the machine
// permits, keepers also run in their own network namespaces behind veth
// links that are cut and restored.
import assert from "node:assert/strict";
import { Cluster, SpikeProcess } from "../scripts/cluster.ts";
import { permissionFlags } from "../scripts/permission_flags.ts";
import {
  canUseNetns,
  type FakeBehavior,
  FakeServer,
  mustRun,
  runCommand,
  sleep,
  SpikeClient,
  waitFor,
} from "./reliability_support.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const NETNS_PERMITTED = await canUseNetns();
if (!NETNS_PERMITTED) {
  console.log(
    "Skipping the network namespace test: this machine does not permit ip netns",
  );
}

interface KeeperStatus {
  index: number;
  reachable: boolean | null;
  holdsShard: boolean | null;
  lastError: string | null;
}

async function keeperStatuses(cluster: Cluster): Promise<KeeperStatus[]> {
  const res = await cluster.call("superuser", "/v1/operator/status");
  return res.body?.keepers as KeeperStatus[];
}

async function shardStatus(cluster: Cluster, url: string): Promise<number> {
  return (await cluster.request("nexus", `${url}/v1/store/shard`, {}, "keeper"))
    .status;
}

Deno.test("keepers that hang, trickle or talk garbage do not stop recovery or sync, and each call is bounded", async () => {
  const timeoutMs = 1_000;
  // Keepers 1 and 2 are real; 3..6 misbehave. Threshold 2 of 6.
  const bad: [number, FakeBehavior][] = [
    [3, "silent"],
    [4, "slow"],
    [5, "garbage"],
    [6, "blackhole"],
  ];
  const cluster = await Cluster.create({
    keepers: 6,
    threshold: 2,
    logLevel: "WARN",
    keeperUpdateInterval: "1s",
    nexusEnv: { SPIKE_NEXUS_KEEPER_TIMEOUT: `${timeoutMs}ms` },
  });
  const fakes = new Map<number, FakeServer>();
  let client: SpikeClient | undefined;
  try {
    await cluster.startKeeper(1);
    await cluster.startKeeper(2);
    for (const [i, behavior] of bad) {
      fakes.set(
        i,
        await FakeServer.start(
          cluster.svidDir(`keeper-${i}`),
          cluster.keeperPorts[i - 1]!,
          behavior,
        ),
      );
    }

    // A new store: the shards reach the two real keepers, that suffices.
    await cluster.startNexus();
    await cluster.waitUnlocked();
    const c = await SpikeClient.open(
      cluster.svidDir("superuser"),
      cluster.nexusUrl,
    );
    client = c;
    const put = await c.post("/v1/store/secrets", {
      path: "net/faults",
      values: { v: "kept" },
    });
    assert.equal(put.status, 200);

    // A crash: recovery polls all six, unlocks from the two real ones.
    await cluster.stopNexus("SIGKILL");
    await cluster.startNexus();
    await cluster.waitUnlocked();
    const got = await c.post("/v1/store/secrets?action=get", {
      path: "net/faults",
    });
    assert.deepEqual(got.json?.data, { v: "kept" });

    // Sync goes on: a restarted real keeper gets its shard back while the
    // bad ones keep failing every round.
    await cluster.stopKeeper(1);
    await cluster.startKeeper(1);
    await waitFor(
      "keeper 1 to be re-supplied",
      async () => (await shardStatus(cluster, cluster.keeperUrl(1))) === 200,
      15_000,
    );
    // Data is served throughout.
    for (let i = 0; i < 5; i++) {
      const res = await c.post("/v1/store/secrets?action=get", {
        path: "net/faults",
      });
      assert.equal(res.status, 200);
    }

    // Every call to a bad keeper was given up: each connection it had
    // accepted by now gets closed by nexus, where only a timeout can close
    // it (the bad keepers never do).
    const cutoff = Date.now();
    await waitFor(
      "nexus to hang up on every hanging keeper",
      () =>
        bad.every(([i, behavior]) =>
          behavior === "garbage" ||
          fakes.get(i)!.connections.every((k) =>
            k.openedAt > cutoff || k.closedAt !== undefined
          )
        ),
      10 * timeoutMs,
    );
    for (const [i, behavior] of bad) {
      const fake = fakes.get(i)!;
      assert.ok(fake.connections.length >= 2, `keeper ${i} was not retried`);
      for (const k of fake.connections) {
        if (k.closedAt !== undefined) {
          assert.ok(
            k.closedAt - k.openedAt < 10 * timeoutMs,
            `a call to the ${behavior} keeper ${i} lasted ${
              k.closedAt - k.openedAt
            } ms`,
          );
        }
      }
    }
    const statuses = await keeperStatuses(cluster);
    for (const [i, behavior] of bad) {
      // The garbage keeper may have answered its last push with a
      // well-formed 200: only the hanging ones always fail.
      if (behavior === "garbage") continue;
      const s = statuses[i - 1]!;
      assert.notEqual(s.holdsShard, true, `keeper ${i} (${behavior})`);
      assert.ok(s.lastError, `keeper ${i} (${behavior}) has no error`);
    }
    assert.match(statuses[2]!.lastError!, /within 1000 ms/);
    assert.equal(statuses[0]!.lastError, null);
    assert.equal(statuses[1]!.lastError, null);
    assert.ok(cluster.nexus?.running);
  } finally {
    await client?.close();
    await cluster.stopNexus();
    for (const fake of fakes.values()) await fake.close();
    await cluster.close();
  }
});

/** A keeper in its own network namespace behind a veth link. */
interface Host {
  readonly ns: string;
  readonly hostIf: string;
  readonly nsIf: string;
  readonly address: string;
}

async function createHost(tag: string, i: number): Promise<Host> {
  const host = {
    ns: `spike-${tag}-k${i}`,
    hostIf: `sk${tag}h${i}`,
    nsIf: `sk${tag}n${i}`,
    address: `10.213.${i}.2`,
  };
  await mustRun("ip", ["netns", "add", host.ns]);
  await mustRun("ip", [
    "link",
    "add",
    host.hostIf,
    "type",
    "veth",
    "peer",
    "name",
    host.nsIf,
  ]);
  await mustRun("ip", ["link", "set", host.nsIf, "netns", host.ns]);
  await mustRun("ip", ["addr", "add", `10.213.${i}.1/30`, "dev", host.hostIf]);
  await mustRun("ip", ["link", "set", host.hostIf, "up"]);
  const inNs = (...args: string[]) =>
    mustRun("ip", ["netns", "exec", host.ns, ...args]);
  await inNs("ip", "addr", "add", `${host.address}/30`, "dev", host.nsIf);
  await inNs("ip", "link", "set", host.nsIf, "up");
  await inNs("ip", "link", "set", "lo", "up");
  return host;
}

async function removeHost(host: Host): Promise<void> {
  // Deleting the namespace deletes its end of the veth pair, and with it
  // the host end.
  await runCommand("ip", ["netns", "del", host.ns]);
  await runCommand("ip", ["link", "del", host.hostIf]);
}

/** Cuts or restores the far end of a host's link (packets are dropped). */
async function setLink(host: Host, up: boolean): Promise<void> {
  await mustRun("ip", [
    "netns",
    "exec",
    host.ns,
    "ip",
    "link",
    "set",
    host.nsIf,
    up ? "up" : "down",
  ]);
}

const KEEPER_PORT = 8443;

async function startNetnsKeeper(
  cluster: Cluster,
  host: Host,
  i: number,
): Promise<void> {
  const env = {
    SPIKE_SVID_DIR: cluster.svidDir(`keeper-${i}`),
    SPIKE_KEEPER_TLS_PORT: `${host.address}:${KEEPER_PORT}`,
    SPIKE_SYSTEM_LOG_LEVEL: "WARN",
  };
  const passthrough: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) passthrough[name] = value;
  }
  const logFile = `${cluster.dir}/logs/netns-keeper-${i}-${Date.now()}.log`;
  const log = await Deno.open(logFile, { write: true, create: true });
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      host.ns,
      Deno.execPath(),
      "run",
      ...permissionFlags("keeper", env),
      MAIN,
      "keeper",
    ],
    env: { ...passthrough, ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  (async () => {
    try {
      for await (const chunk of child.stderr) {
        output += decoder.decode(chunk, { stream: true });
        await log.write(chunk);
      }
    } finally {
      log.close();
    }
  })();
  const proc = new SpikeProcess(child, logFile);
  cluster.keepers.set(i, proc);
  // The keeper says so when it listens; its link may be cut, so the test
  // cannot always connect to find out.
  await waitFor(`keeper ${i} in ${host.ns} to listen`, () => {
    if (!proc.running) throw new Error(`Keeper ${i} exited`);
    return output.includes("listening on port");
  }, 20_000);
}

Deno.test({
  name:
    "keepers behind real network links: nexus recovers across cut links and re-hydrates a keeper when its link returns",
  ignore: !NETNS_PERMITTED,
  async fn() {
    const tag = String(Deno.pid % 10_000);
    const hosts: Host[] = [];
    const cluster = await Cluster.create({
      keepers: 3,
      threshold: 2,
      logLevel: "WARN",
      keeperUpdateInterval: "1s",
      nexusEnv: {
        SPIKE_NEXUS_KEEPER_PEERS: [1, 2, 3]
          .map((i) => `https://10.213.${i}.2:${KEEPER_PORT}`).join(","),
        SPIKE_NEXUS_KEEPER_TIMEOUT: "1s",
        SPIKE_NEXUS_RECOVERY_MAX_INTERVAL: "1s",
      },
    });
    const url = (i: number) =>
      `https://${hosts[i - 1]!.address}:${KEEPER_PORT}`;
    try {
      for (const i of [1, 2, 3]) hosts.push(await createHost(tag, i));
      for (const i of [1, 2, 3]) {
        await startNetnsKeeper(cluster, hosts[i - 1]!, i);
      }
      await cluster.startNexus();
      await cluster.waitUnlocked();
      const put = await cluster.call("superuser", "/v1/store/secrets", {
        path: "netns/secret",
        values: { v: "across the wire" },
      });
      assert.equal(put.status, 200);
      for (const i of [1, 2, 3]) {
        await waitFor(
          `keeper ${i} to hold its shard`,
          async () => (await shardStatus(cluster, url(i))) === 200,
        );
      }

      // Keeper 1's link is cut: a new nexus recovers from 2 and 3.
      await setLink(hosts[0]!, false);
      await cluster.stopNexus("SIGKILL");
      await cluster.startNexus();
      await cluster.waitUnlocked();
      const got = await cluster.call(
        "superuser",
        "/v1/store/secrets?action=get",
        { path: "netns/secret" },
      );
      assert.deepEqual(got.body?.data, { v: "across the wire" });

      // Keeper 2's link is cut too: one reachable keeper is not enough.
      await setLink(hosts[1]!, false);
      await cluster.stopNexus("SIGKILL");
      await cluster.startNexus();
      await sleep(2_500);
      const locked = await cluster.call("superuser", "/v1/operator/status");
      assert.equal(locked.body?.state, "locked");
      const statuses = locked.body?.keepers as KeeperStatus[];
      assert.equal(statuses[0]!.reachable, false);
      assert.equal(statuses[1]!.reachable, false);
      // Keeper 2's link comes back: nexus unlocks on its own.
      await setLink(hosts[1]!, true);
      await cluster.waitUnlocked(20_000);

      // Keeper 1 restarts empty while cut off; once its link returns,
      // nexus supplies it again.
      await cluster.stopKeeper(1);
      await startNetnsKeeper(cluster, hosts[0]!, 1);
      await setLink(hosts[0]!, true);
      await waitFor(
        "keeper 1 to be re-supplied across its restored link",
        async () => (await shardStatus(cluster, url(1))) === 200,
        20_000,
      );
    } finally {
      await cluster.stopNexus();
      for (const i of [...cluster.keepers.keys()]) await cluster.stopKeeper(i);
      for (const host of hosts) await removeHost(host);
      await cluster.close();
    }
  },
});
