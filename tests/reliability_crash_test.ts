// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Crash faults with real processes and kill -9: nexus killed at random
// moments under concurrent compare-and-set writers, then every process
// killed and brought back from the recovery files. After each crash, every
// acknowledged write is present with its exact version, and an
// unacknowledged write is either absent or whole.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import {
  Prng,
  sized,
  sleep,
  SpikeClient,
  testSeed,
} from "./reliability_support.ts";

/** Versions kept per secret: more than a writer can make in one trial. */
const MAX_VERSIONS = 1000;
/** Writes one writer makes per trial at most. */
const MAX_WRITES_PER_TRIAL = 400;

/** The value of version `v` of a writer's secret: knowable from its name. */
function valueOf(owner: string, v: number): Record<string, string> {
  return {
    owner,
    n: String(v),
    // Varying sizes, so some writes span several pages of the database.
    pad: `${owner}:${v}:`.repeat(1 + (v * 37) % 300),
  };
}

/** One writer's secret and what nexus acknowledged for it. */
interface Track {
  readonly owner: string;
  readonly path: string;
  /** The last acknowledged version. */
  acked: number;
  /** A write was sent and no answer came: it may or may not be stored. */
  unsure: boolean;
}

/** When writers stop: `killing` is set just before nexus is killed. */
interface Stop {
  now: boolean;
  killing: boolean;
}

/**
 * Writes `track.path` version after version with compare-and-set, so the
 * version of each acknowledged write is known, until the first failure or
 * `stop`.
 */
async function writeUntilFailure(
  client: SpikeClient,
  track: Track,
  stop: Stop,
): Promise<void> {
  while (!stop.now && track.acked < MAX_WRITES_PER_TRIAL) {
    const next = track.acked + 1;
    track.unsure = true;
    let status: number;
    try {
      status = (await client.post("/v1/store/secrets", {
        path: track.path,
        values: valueOf(track.owner, next),
        cas: track.acked,
      })).status;
    } catch (e) {
      // No answer: nexus died under this write, which only the kill may do.
      if (stop.killing) return;
      throw new Error(`Write ${track.path}@${next} failed before the kill`, {
        cause: e,
      });
    }
    if (status !== 200) {
      throw new Error(`Write ${track.path}@${next} answered ${status}`);
    }
    track.acked = next;
    track.unsure = false;
  }
}

/**
 * Checks a writer's secret after recovery: every acknowledged version is
 * listed, at most the one unsure write beyond it, and the latest versions
 * (where a crash strikes) plus a sample of older ones decrypt to their exact
 * whole values; `everyValue` reads them all.
 *
 * @returns the stored current version
 */
async function verifyTrack(
  client: SpikeClient,
  track: Track,
  prng: Prng,
  everyValue = false,
): Promise<number> {
  const meta = await client.post("/v1/store/secrets/metadata?action=get", {
    path: track.path,
  });
  if (meta.status === 404) {
    assert.equal(track.acked, 0, `${track.path}: acknowledged writes lost`);
    return 0;
  }
  assert.equal(meta.status, 200, `${track.path}: metadata ${meta.status}`);
  const body = meta.json as {
    versions: Record<string, unknown>;
    metadata: { currentVersion: number };
  };
  const current = body.metadata.currentVersion;
  const allowed = track.unsure ? [track.acked, track.acked + 1] : [track.acked];
  assert.ok(
    allowed.includes(current),
    `${track.path}: acknowledged ${track.acked} (unsure ${track.unsure}), stored ${current}`,
  );
  assert.deepEqual(
    Object.keys(body.versions).map(Number).sort((a, b) => a - b),
    Array.from({ length: current }, (_, i) => i + 1),
    `${track.path}: the stored versions are not 1..${current}`,
  );
  const read = new Set<number>();
  for (let v = Math.max(1, current - 7); v <= current; v++) read.add(v);
  for (let i = 0; i < 4 && current > 0; i++) read.add(prng.int(1, current));
  if (everyValue) { for (let v = 1; v <= current; v++) read.add(v); }
  for (const v of read) {
    const got = await client.post("/v1/store/secrets?action=get", {
      path: track.path,
      version: v,
    });
    assert.equal(got.status, 200, `${track.path}@${v}: ${got.status}`);
    assert.deepEqual(got.json?.data, valueOf(track.owner, v));
  }
  return current;
}

/** Runs `writers` concurrent writers, one client each, on fresh paths. */
function startWriters(
  clients: SpikeClient[],
  prefix: string,
  stop: Stop,
): { tracks: Track[]; done: Promise<void[]> } {
  const tracks = clients.map((_, w): Track => ({
    owner: `${prefix}-w${w}`,
    path: `crash/${prefix}/w${w}`,
    acked: 0,
    unsure: false,
  }));
  const done = Promise.all(
    clients.map((c, w) => writeUntilFailure(c, tracks[w]!, stop)),
  );
  return { tracks, done };
}

async function openClients(
  cluster: Cluster,
  n: number,
): Promise<SpikeClient[]> {
  const clients: SpikeClient[] = [];
  for (let i = 0; i < n; i++) {
    clients.push(
      await SpikeClient.open(cluster.svidDir("superuser"), cluster.nexusUrl),
    );
  }
  return clients;
}

Deno.test("nexus killed at random moments under concurrent writers loses no acknowledged write", async () => {
  const trials = sized(20, 100);
  const prng = new Prng(testSeed("nexus crash trials"));
  const cluster = await Cluster.create({
    keepers: 3,
    threshold: 2,
    logLevel: "WARN",
    nexusEnv: { SPIKE_NEXUS_MAX_SECRET_VERSIONS: String(MAX_VERSIONS) },
  });
  const clients = await openClients(cluster, 4);
  const all: { track: Track; version: number }[] = [];
  let acknowledged = 0;
  let unsureStored = 0;
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    for (let trial = 1; trial <= trials; trial++) {
      const stop = { now: false, killing: false };
      const { tracks, done } = startWriters(clients, `t${trial}`, stop);
      await sleep(prng.int(50, 500));
      stop.killing = true;
      await cluster.stopNexus("SIGKILL");
      stop.now = true;
      await done;
      await cluster.startNexus();
      await cluster.waitUnlocked();
      for (const track of tracks) {
        const version = await verifyTrack(clients[0]!, track, prng);
        if (version > track.acked) unsureStored++;
        acknowledged += track.acked;
        all.push({ track, version });
      }
    }
    // Later crashes did not disturb what earlier trials left.
    for (const { track, version } of all) {
      const meta = await clients[0]!.post(
        "/v1/store/secrets/metadata?action=get",
        { path: track.path },
      );
      if (version === 0) assert.equal(meta.status, 404);
      else {
        const m = meta.json?.metadata as { currentVersion: number };
        assert.equal(m.currentVersion, version, track.path);
      }
    }
    assert.ok(acknowledged > 0, "no write was ever acknowledged");
    console.log(
      `${trials} crashes, ${acknowledged} acknowledged writes kept, ` +
        `${unsureStored} unacknowledged writes found whole`,
    );
  } finally {
    for (const c of clients) await c.close();
    await cluster.close();
  }
});

async function keepersHoldShards(cluster: Cluster): Promise<boolean> {
  const status = await cluster.call("superuser", "/v1/operator/status");
  const keepers = status.body?.keepers as { holdsShard: boolean }[] | undefined;
  return keepers !== undefined && keepers.every((k) => k.holdsShard === true);
}

Deno.test("every process killed: restore from the recovery files brings back every acknowledged write", async () => {
  const trials = sized(2, 8);
  const prng = new Prng(testSeed("total loss trials"));
  const cluster = await Cluster.create({
    keepers: 3,
    threshold: 2,
    logLevel: "WARN",
    keeperUpdateInterval: "500ms",
    nexusEnv: { SPIKE_NEXUS_MAX_SECRET_VERSIONS: String(MAX_VERSIONS) },
  });
  const clients = await openClients(cluster, 3);
  const all: Track[] = [];
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    // Recovery files are taken once, early: they stay valid for the life
    // of the root key, whatever is written after.
    const recovered = await cluster.pilot("recover", ["operator", "recover"]);
    assert.equal(recovered.code, 0, recovered.stderr);
    const files = [1, 2, 3].map((i) =>
      Deno.readTextFileSync(`${cluster.dir}/recover/spike.recovery.${i}.txt`)
    );
    for (let trial = 1; trial <= trials; trial++) {
      const stop = { now: false, killing: false };
      const { tracks, done } = startWriters(clients, `loss${trial}`, stop);
      await sleep(prng.int(100, 600));
      stop.killing = true;
      await Promise.all([
        cluster.stopNexus("SIGKILL"),
        ...[1, 2, 3].map((i) => cluster.stopKeeper(i, "SIGKILL")),
      ]);
      stop.now = true;
      await done;
      all.push(...tracks);

      for (let i = 1; i <= 3; i++) await cluster.startKeeper(i);
      await cluster.startNexus();
      const locked = await cluster.call(
        "superuser",
        "/v1/store/secrets?action=list",
      );
      assert.equal(locked.status, 503, "empty keepers must leave nexus locked");

      const first = prng.int(1, 3);
      const second = prng.pick([1, 2, 3].filter((i) => i !== first));
      for (const index of [first, second]) {
        const res = await cluster.pilot("restore", ["operator", "restore"], {
          stdin: files[index - 1]!,
        });
        assert.equal(res.code, 0, `restore shard ${index}: ${res.stderr}`);
      }
      await cluster.waitUnlocked(10_000);
      for (const track of all) {
        await verifyTrack(clients[0]!, track, prng, true);
      }

      // The restored nexus re-supplies the keepers, so the next crash of
      // nexus alone heals without operators.
      const deadline = Date.now() + 15_000;
      while (!(await keepersHoldShards(cluster))) {
        assert.ok(Date.now() < deadline, "keepers were not re-supplied");
        await sleep(200);
      }
      await cluster.stopNexus("SIGKILL");
      await cluster.startNexus();
      await cluster.waitUnlocked();
      for (const track of all) {
        // Every write is settled now: what is stored is what the next
        // check must find.
        const meta = await clients[0]!.post(
          "/v1/store/secrets/metadata?action=get",
          { path: track.path },
        );
        const m = meta.json?.metadata as { currentVersion: number } | undefined;
        track.acked = m?.currentVersion ?? 0;
        track.unsure = false;
      }
    }
    const kept = all.reduce((n, t) => n + t.acked, 0);
    assert.ok(kept > 0, "no write was ever acknowledged");
    console.log(`${trials} total losses restored, ${kept} writes kept`);
  } finally {
    for (const c of clients) await c.close();
    await cluster.close();
  }
});
