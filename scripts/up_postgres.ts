// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task up --postgres`: a throwaway PostgreSQL cluster, 3 keepers
 * (threshold 2) and 3 nexus replicas sharing the database, kept running
 * until Ctrl-C, with the commands to talk to each replica.
 *
 * @module
 */
import { Cluster } from "./cluster.ts";
import { startPgCluster } from "./pg_cluster.ts";
import { ReplicaSet } from "./replicas.ts";

/**
 * Runs the replicated local cluster until a stop signal.
 *
 * @param stopped resolves at the first stop signal
 * @returns the exit code
 */
export async function upPostgres(stopped: Promise<unknown>): Promise<number> {
  console.error("Starting PostgreSQL, 3 keepers and 3 nexus replicas…");
  await using pg = await startPgCluster({ durable: true });
  const url = await pg.createDatabase("spike_nexus", crypto.randomUUID());
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  const set = new ReplicaSet(cluster, 3, url);
  try {
    for (let i = 1; i <= 3; i++) await cluster.startKeeper(i);
    await set.startAll();
    for (let i = 1; i <= 3; i++) await set.waitUnlocked(i);
    const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
    const env = (i: number) =>
      `SPIKE_SVID_DIR=${cluster.svidDir("superuser")} SPIKE_NEXUS_API_URL=${
        set.url(i)
      }`;
    console.log(
      `SPIKE is running with 3 replicas on PostgreSQL (127.0.0.1:${pg.port}, database spike_nexus); folder ${cluster.dir}

Talk to any replica (run from ${root}):

  ${env(1)} deno task spike pilot secret put apps/db password=s3cret
  ${env(2)} deno task spike pilot secret get apps/db
  ${env(3)} deno task spike pilot status     # every replica, and the push leader

Kill one (kill -9 <pid> from pilot status) and the others go on serving.
Logs: ${cluster.dir}/logs. Press Ctrl-C to stop and remove everything.`,
    );
    await stopped;
    return 0;
  } catch (e) {
    console.error(`SPIKE did not start: ${e instanceof Error ? e.message : e}`);
    return 1;
  } finally {
    await set.close();
    await cluster.close();
  }
}
