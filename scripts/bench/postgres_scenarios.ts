// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The PostgreSQL scenarios of the benchmark: secret read and durable write
 * through one replica and through three (the load split evenly over them),
 * next to a baseline measured in the same pass, on a throwaway cluster
 * with fsync and synchronous commit on; and the time a replica takes from
 * a restart to its first read when its keepers sit behind WAN links (80,
 * 100 and 150 ms round trips, 1 % loss) with one keeper black-holed.
 *
 * @module
 */
import { Cluster } from "../cluster.ts";
import { startPgCluster } from "../pg_cluster.ts";
import { ReplicaSet } from "../replicas.ts";
import { TcpProxy } from "../tcp_proxy.ts";
import { type Measured, runLoad } from "./load.ts";
import type { LoadConfig, RequestSpec } from "./load_spec.ts";
import type { BenchOptions } from "./options.ts";
import type { Row } from "./report.ts";
import { Baseline, ScenarioError, WORKLOAD_ID } from "./scenarios.ts";

const SECRETS = "/v1/store/secrets";
const READ_PATHS = 100;
const WRITE_PATHS = 1_000;
const LINKS = [40, 50, 75];

/**
 * Runs the PostgreSQL scenarios.
 *
 * @param opts the benchmark options
 * @param progress reports what runs
 * @returns the rows, and notes for the report
 */
export async function postgresScenarios(
  opts: BenchOptions,
  progress: (message: string) => void,
): Promise<{ rows: Row[]; notes: string[] }> {
  progress(
    "PostgreSQL: a throwaway cluster, 4 keepers behind WAN links, 3 replicas",
  );
  await using pg = await startPgCluster({ durable: true });
  const url = await pg.createDatabase("spike_nexus", "bench-password");
  const cluster = await Cluster.create({
    keepers: 4,
    threshold: 2,
    logLevel: "WARN",
  });
  const proxies = cluster.keeperPorts.map((port, i) =>
    TcpProxy.start({ hostname: "127.0.0.1", port }, {
      delayMs: LINKS[i] ?? 0,
      jitterMs: 5,
      loss: 0.01,
    })
  );
  cluster.options.nexusEnv.SPIKE_NEXUS_KEEPER_PEERS = proxies
    .map((p) => `https://127.0.0.1:${p.port}`).join(",");
  cluster.options.nexusEnv.SPIKE_NEXUS_KEEPER_TIMEOUT = "60s";
  const set = new ReplicaSet(cluster, 3, url);
  let baseline: Baseline | undefined;
  try {
    for (let i = 1; i <= 4; i++) await cluster.startKeeper(i);
    await set.startAll();
    for (let i = 1; i <= 3; i++) await set.waitUnlocked(i);
    await cluster.issue("workload", WORKLOAD_ID);
    const policy = await set.call(1, "superuser", "/v1/acl/policy", {
      name: "workload-bench",
      spiffeidPattern: "spiffe://spike\\.ist/workload/bench",
      pathPattern: "bench/.*",
      permissions: ["read", "write"],
    });
    if (policy.status !== 200) {
      throw new ScenarioError(`Creating the policy failed: ${policy.status}`);
    }
    const value = "v".repeat(opts.size);
    const spec = (label: string, prefix: string, modulo: number) =>
      label === "read"
        ? {
          label,
          route: `${SECRETS}?action=get`,
          body: JSON.stringify({ path: `${prefix}/{i}` }),
          modulo,
        }
        : {
          label,
          route: SECRETS,
          body: JSON.stringify({ path: `${prefix}/{i}`, values: { value } }),
          modulo,
        };
    const config = (
      i: number,
      identity: string,
      request: RequestSpec,
      overrides: Partial<LoadConfig> = {},
    ): LoadConfig => ({
      url: set.url(i),
      svidDir: cluster.svidDir(identity),
      concurrency: opts.concurrency,
      keepAlive: true,
      warmupMs: opts.warmupMs,
      durationMs: opts.durationMs,
      requests: [request],
      ...overrides,
    });
    const pid = (i: number) => set.running.get(i)!.pid;
    await runLoad(
      config(1, "superuser", spec("write", "bench/r", READ_PATHS), {
        count: READ_PATHS,
        concurrency: 8,
      }),
      pid(1),
    );
    baseline = await Baseline.start(cluster.svidDir("nexus"), opts.size);
    const c = opts.concurrency;
    const base = await runLoad(
      {
        ...config(1, "workload", spec("read", "bench/r", READ_PATHS)),
        url: baseline.url,
      },
      baseline.pid,
    );
    // Through three replicas: the clients split evenly, run together.
    // Writers get paths of their own per replica: three load clients
    // counting from 0 together would write the same path at the same time.
    const spread = async (
      request: (i: number) => RequestSpec,
    ): Promise<Measured[]> => {
      const share = Math.max(1, Math.round(c / 3));
      return await Promise.all(
        [1, 2, 3].map((i) =>
          runLoad(
            config(i, "workload", request(i), { concurrency: share }),
            pid(i),
          )
        ),
      );
    };
    const row = (
      id: string,
      scenario: string,
      parts: Measured[],
    ): Row => {
      const rps = parts.reduce((sum, m) => sum + m.load.rps, 0);
      const cpu = parts.reduce(
        (sum, m) => sum + m.server.cpuUsPerRequest * m.load.rps,
        0,
      ) / rps;
      return {
        id,
        scenario,
        clients: c,
        rps,
        ratio: rps / base.load.rps,
        baselineRps: base.load.rps,
        p50: Math.max(...parts.map((m) => m.load.latency.p50)),
        p99: Math.max(...parts.map((m) => m.load.latency.p99)),
        max: Math.max(...parts.map((m) => m.load.latency.max)),
        cpuUsPerRequest: cpu,
        rssMb: Math.max(...parts.map((m) => m.server.peakRssMb)),
      };
    };
    progress(
      `PostgreSQL: read and write through 1 and 3 replicas at ${c} clients`,
    );
    const rows: Row[] = [
      {
        id: "baseline-pg",
        scenario: "Baseline: trivial mTLS handler (PostgreSQL pass)",
        clients: c,
        rps: base.load.rps,
        ratio: 1,
        baselineRps: base.load.rps,
        p50: base.load.latency.p50,
        p99: base.load.latency.p99,
        max: base.load.latency.max,
      },
      row("pg-read-1", "Secret read, PostgreSQL, 1 replica", [
        await runLoad(
          config(1, "workload", spec("read", "bench/r", READ_PATHS)),
          pid(1),
        ),
      ]),
      row("pg-write-1", "Secret write (durable), PostgreSQL, 1 replica", [
        await runLoad(
          config(1, "workload", spec("write", "bench/w", WRITE_PATHS)),
          pid(1),
        ),
      ]),
      row(
        "pg-read-3",
        "Secret read, PostgreSQL, 3 replicas",
        await spread(() => spec("read", "bench/r", READ_PATHS)),
      ),
      row(
        "pg-write-3",
        "Secret write (durable), PostgreSQL, 3 replicas",
        await spread((i) => spec("write", `bench/w${i}`, WRITE_PATHS)),
      ),
    ];

    progress(
      "PostgreSQL: replica restart with keepers far away, one black-holed",
    );
    proxies[3]!.setMode("blackhole");
    await set.stop(1);
    const t0 = performance.now();
    await set.start(1);
    const listening = performance.now() - t0;
    for (;;) {
      const res = await set.call(1, "workload", `${SECRETS}?action=get`, {
        path: "bench/r/1",
      }).catch(() => undefined);
      if (res?.status === 200) break;
      if (performance.now() - t0 > 60_000) {
        throw new ScenarioError("The replica did not serve within 60 s");
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    const total = performance.now() - t0;
    rows.push({
      id: "wan-unlock",
      scenario:
        "Replica restart to first read, keepers at 80/100/150 ms RTT + 1 % loss, one black-holed",
      p50: total,
      note: `port open after ${
        listening.toFixed(0)
      } ms; the black-holed keeper was still hanging`,
    });
    return {
      rows,
      notes: [
        `PostgreSQL rows: a throwaway PostgreSQL ${"15"} cluster on this machine with fsync and synchronous_commit on (no standby); writes are one PL/pgSQL call each, acknowledged after commit. "3 replicas" splits the ${c} clients evenly over three nexus processes sharing the 2 cores.`,
        `Keepers far away: after the restart the replica unlocked ${
          (total - listening).toFixed(0)
        } ms after its port opened, from the two nearest keepers (80 and 100 ms round trips), without waiting for the 150 ms one or the black-holed one.`,
      ],
    };
  } finally {
    await baseline?.stop();
    await set.close();
    for (const p of proxies) p.close();
    await cluster.close();
  }
}
