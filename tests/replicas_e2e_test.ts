// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Three nexus replicas, three keepers and one PostgreSQL, all real
// processes: a simultaneous first start makes one store; a policy granted
// and revoked on one replica is enforced on the others; concurrent writers
// through every replica lose no acknowledged write while replicas (the
// push leader among them) are killed with SIGKILL in a loop; a frozen
// replica stalls nobody and loses the push leadership; the push leaders
// keep the write fence pruned; a replica cut off from the database answers
// 503, keeps its key, and resumes by itself.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import { ReplicaSet } from "../scripts/replicas.ts";
import { TcpProxy } from "../scripts/tcp_proxy.ts";
import {
  adminSql,
  announceSkip,
  freshSchema,
  pg,
  testAdminUrl,
  testDatabaseUrl,
} from "./pg_support.ts";
import { sized, sleep, waitFor } from "./reliability_support.ts";

announceSkip("replicas_e2e_test.ts");

const SECRETS = "/v1/store/secrets";
const WORKLOAD = "spiffe://spike.ist/workload/app";
const CHECK_INTERVAL_MS = 500;

interface Ack {
  readonly path: string;
  readonly version: number;
  readonly value: string;
}

interface ReplicaRow {
  id: string;
  name: string;
  pushLeader: boolean;
  state: string;
}

async function replicas(set: ReplicaSet, via: number): Promise<ReplicaRow[]> {
  const res = await set.call(via, "superuser", "/v1/operator/status");
  return (res.body?.replicas ?? []) as ReplicaRow[];
}

async function leaderIndex(set: ReplicaSet, via: number): Promise<number> {
  const leader = (await replicas(set, via)).find((r) =>
    r.pushLeader && r.state === "unlocked"
  );
  return leader ? Number(leader.name.replace("replica-", "")) : 0;
}

// Puts a value through replica `i`; the version when nexus acknowledged it.
async function put(
  set: ReplicaSet,
  i: number,
  path: string,
  value: string,
): Promise<number | undefined> {
  try {
    const res = await set.call(i, "superuser", SECRETS, {
      path,
      values: { v: value },
    });
    if (res.status !== 200) return undefined;
    const meta = await set.call(
      i,
      "superuser",
      "/v1/store/secrets/metadata?action=get",
      {
        path,
      },
    );
    // The put answers without its version (upstream's wire); find it as
    // the version holding this unique value.
    const versions = Object.keys(
      (meta.body?.versions ?? {}) as Record<string, unknown>,
    ).map(Number).sort((a, b) => b - a);
    for (const v of versions) {
      const got = await set.call(i, "superuser", `${SECRETS}?action=get`, {
        path,
        version: v,
      });
      if ((got.body?.data as Record<string, string>)?.v === value) return v;
    }
    throw new Error(`Acknowledged ${path}=${value} not found right after`);
  } catch (e) {
    if (e instanceof Error && e.message.startsWith("Acknowledged")) throw e;
    return undefined;
  }
}

Deno.test({
  name:
    "three replicas: one store from a simultaneous start, coherent policies, no acknowledged write lost across kill -9 of replicas and the push leader, a frozen replica stalls nobody",
  ignore: !pg,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await Cluster.create({
      keepers: 3,
      threshold: 2,
      logLevel: "INFO",
      keeperUpdateInterval: "2s",
    });
    const schema = await freshSchema();
    const set = new ReplicaSet(cluster, 3, testDatabaseUrl(schema), {
      SPIKE_NEXUS_POLICY_CHECK_INTERVAL: `${CHECK_INTERVAL_MS}ms`,
      SPIKE_NEXUS_MAX_SECRET_VERSIONS: "1000",
      SPIKE_NEXUS_WRITE_FENCE_PRUNE_INTERVAL: "1s",
    });
    const admin = adminSql(testAdminUrl());
    try {
      for (let i = 1; i <= 3; i++) await cluster.startKeeper(i);
      await set.startAll();
      for (let i = 1; i <= 3; i++) await set.waitUnlocked(i);

      // One store: one ready meta, created once, readable everywhere.
      const metas = await admin.unsafe(
        `SELECT state, store_id FROM ${schema}.spike_meta`,
      );
      assert.equal(metas.length, 1);
      assert.equal(metas[0]!.state, "ready");
      let created = 0;
      for (const proc of set.running.values()) {
        const log = await Deno.readTextFile(proc.logFile);
        created += log.split("New store initialized").length - 1;
      }
      assert.equal(created, 1, "exactly one replica created the store");
      assert.equal(
        (await set.call(1, "superuser", SECRETS, {
          path: "app/db",
          values: { pass: "one" },
        })).status,
        200,
      );
      for (const i of [2, 3]) {
        const got = await set.call(i, "superuser", `${SECRETS}?action=get`, {
          path: "app/db",
        });
        assert.deepEqual(got.body?.data, { pass: "one" });
      }
      await waitFor(
        "a push leader",
        async () => (await leaderIndex(set, 1)) > 0,
      );
      assert.equal((await replicas(set, 2)).length, 3);

      // A policy granted on replica 1 is enforced on 2 and 3, and so is
      // its revocation.
      await cluster.issue("app", WORKLOAD);
      const readAs = (i: number) =>
        set.call(i, "app", `${SECRETS}?action=get`, { path: "app/db" });
      for (const i of [2, 3]) assert.equal((await readAs(i)).status, 401);
      const policy = {
        name: "app-read",
        spiffeidPattern: WORKLOAD.replaceAll(".", "\\."),
        pathPattern: "app/.*",
        permissions: ["read"],
      };
      assert.equal(
        (await set.call(1, "superuser", "/v1/acl/policy", policy)).status,
        200,
      );
      const granted = performance.now();
      for (const i of [2, 3]) {
        await waitFor(
          `the grant on replica ${i}`,
          async () => (await readAs(i)).status === 200,
          10_000,
          10,
        );
      }
      const grantMs = performance.now() - granted;
      assert.equal(
        (await set.call(1, "superuser", "/v1/acl/policy?action=delete", {
          name: "app-read",
        })).status,
        200,
      );
      const revoked = performance.now();
      for (const i of [2, 3]) {
        await waitFor(
          `the revocation on replica ${i}`,
          async () => (await readAs(i)).status === 401,
          10_000,
          10,
        );
      }
      console.log(
        `policy staleness across replicas: grant seen after ${
          grantMs.toFixed(0)
        } ms, revocation after ${
          (performance.now() - revoked).toFixed(0)
        } ms (each includes one mTLS request per poll)`,
      );

      // Writers through every live replica while replicas die.
      const acks: Ack[] = [];
      let writing = true;
      let seq = 0;
      const live = () => [...set.running.keys()];
      const writer = async (w: number) => {
        while (writing) {
          const choices = live();
          const i = choices[Math.floor(Math.random() * choices.length)]!;
          const path = `load/${w % 3}`;
          const value = `w${w}-${++seq}`;
          const version = await put(set, i, path, value);
          if (version !== undefined) acks.push({ path, version, value });
          else await sleep(50);
        }
      };
      const writers = Array.from({ length: 4 }, (_, w) => writer(w));
      const rounds = sized(3, 15);
      for (let round = 0; round < rounds; round++) {
        await sleep(800);
        const alive = live();
        const leader = await leaderIndex(set, alive[0]!);
        // Every other round kills the push leader.
        const victim = round % 2 === 0 && leader > 0
          ? leader
          : alive[Math.floor(Math.random() * alive.length)]!;
        await set.stop(victim, "SIGKILL");
        await sleep(300);
        await set.start(victim);
        await set.waitUnlocked(victim);
      }
      await sleep(500);
      writing = false;
      await Promise.all(writers);
      assert.ok(acks.length > 10, `only ${acks.length} writes acknowledged`);
      console.log(
        `${acks.length} writes acknowledged across ${rounds} replica kills`,
      );

      // Every acknowledged write is there with its value; versions are
      // contiguous and none was given twice.
      const seen = new Set<string>();
      for (const ack of acks) {
        const key = `${ack.path}@${ack.version}`;
        assert.ok(!seen.has(key), `version ${key} acknowledged twice`);
        seen.add(key);
      }
      for (const path of new Set(acks.map((a) => a.path))) {
        const meta = await set.call(
          1,
          "superuser",
          "/v1/store/secrets/metadata?action=get",
          {
            path,
          },
        );
        const versions = Object.keys(
          meta.body?.versions as Record<string, unknown>,
        ).map(Number).sort((a, b) => a - b);
        assert.deepEqual(
          versions,
          Array.from({ length: versions.length }, (_, k) => versions[0]! + k),
          `versions of ${path} are contiguous`,
        );
        assert.equal(versions[0], 1);
      }
      for (const ack of acks) {
        const got = await set.call(2, "superuser", `${SECRETS}?action=get`, {
          path: ack.path,
          version: ack.version,
        });
        assert.equal(
          (got.body?.data as Record<string, string>)?.v,
          ack.value,
          `${ack.path} version ${ack.version}`,
        );
      }
      for (let i = 1; i <= 3; i++) {
        const got = await set.call(i, "superuser", `${SECRETS}?action=get`, {
          path: "app/db",
        });
        assert.equal(got.status, 200, `replica ${i} serves`);
      }
      // The push leaders pruned the write fence as they went.
      const [fence] = await admin.unsafe(
        `SELECT (SELECT count(*) FROM ${schema}.spike_write_fence) AS rows,
                (SELECT fence_epoch FROM ${schema}.spike_meta) AS epoch`,
      );
      assert.ok(Number(fence!.epoch) > 2, `fence epoch ${fence!.epoch}`);
      assert.ok(
        Number(fence!.rows) < acks.length,
        `${fence!.rows} fence rows after ${acks.length} writes`,
      );

      // The push leader frozen: the others keep writing the same paths
      // while it is stopped, and one of them takes the leadership.
      const frozen = await leaderIndex(set, 1);
      assert.ok(frozen > 0);
      const others = [1, 2, 3].filter((i) => i !== frozen);
      set.running.get(frozen)!.signal("SIGSTOP");
      try {
        for (let n = 0; n < 10; n++) {
          const i = others[n % 2]!;
          assert.equal(
            (await set.call(i, "superuser", SECRETS, {
              path: "load/0",
              values: { v: `frozen-${n}` },
            })).status,
            200,
          );
        }
        await waitFor(
          "another replica to lead the push loop",
          async () => others.includes(await leaderIndex(set, others[0]!)),
          30_000,
          200,
        );
      } finally {
        set.running.get(frozen)!.signal("SIGCONT");
      }
      await set.waitUnlocked(frozen);
      const back = await set.call(
        frozen,
        "superuser",
        `${SECRETS}?action=get`,
        {
          path: "load/0",
        },
      );
      assert.deepEqual(back.body?.data, { v: "frozen-9" });

      // Each start of a replica that unlocked from the keepers said so
      // once, though three keepers answered together.
      for await (const entry of Deno.readDir(`${cluster.dir}/logs`)) {
        if (!entry.name.startsWith("nexus-")) continue;
        const log = await Deno.readTextFile(
          `${cluster.dir}/logs/${entry.name}`,
        );
        assert.ok(
          log.split("Root key recovered from keepers").length <= 2,
          `${entry.name} logs the recovery more than once`,
        );
      }
    } finally {
      await admin.end();
      await set.close();
      await cluster.close();
    }
  },
});

Deno.test({
  name:
    "a replica cut off from the database, or refused by it, answers 503, keeps its root key, and serves again by itself",
  ignore: !pg,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
    const schema = await freshSchema();
    let proxy = TcpProxy.start({ hostname: pg!.host, port: pg!.port });
    const { port } = proxy;
    const url = testDatabaseUrl(schema).replace(
      `:${pg!.port}/`,
      `:${port}/`,
    );
    const set = new ReplicaSet(cluster, 1, url, {
      SPIKE_NEXUS_POLICY_CHECK_INTERVAL: `${CHECK_INTERVAL_MS}ms`,
    });
    try {
      for (let i = 1; i <= 3; i++) await cluster.startKeeper(i);
      await set.start(1);
      await set.waitUnlocked(1);
      const get = () =>
        set.call(1, "superuser", `${SECRETS}?action=get`, { path: "a" });
      assert.equal(
        (await set.call(1, "superuser", SECRETS, {
          path: "a",
          values: { k: "v" },
        })).status,
        200,
      );
      // The keepers go away too: a replica that lost its key could not
      // come back without them.
      for (let i = 1; i <= 3; i++) await cluster.stopKeeper(i);
      proxy.setMode("cut");
      assert.equal((await get()).status, 503);
      // Within three policy check intervals, no route serves on policies
      // it cannot confirm, the cipher (no database needed) included.
      await waitFor(
        "the cipher to answer 503",
        async () =>
          (await set.call(1, "superuser", "/v1/cipher/encrypt", {
            plaintext: btoa("x"),
          })).status === 503,
      );
      const status = await set.call(1, "superuser", "/v1/operator/status");
      assert.equal(status.body?.state, "unlocked", "it keeps its key");
      assert.equal(status.body?.database, "unreachable");
      proxy.setMode("forward");
      await waitFor("serving again", async () => (await get()).status === 200);
      assert.deepEqual((await get()).body?.data, { k: "v" });

      // The database's port closed (a restart, a failover): connections
      // are refused, more often than the pool has connections, then it
      // listens again.
      proxy.close();
      await waitFor(
        "503 while refused",
        async () => (await get()).status === 503,
      );
      for (let i = 0; i < 12; i++) assert.equal((await get()).status, 503);
      proxy = TcpProxy.start({ hostname: pg!.host, port: pg!.port }, {}, port);
      await waitFor(
        "serving after the refusals",
        async () => (await get()).status === 200,
      );
    } finally {
      await set.close();
      proxy.close();
      await cluster.close();
    }
  },
});
