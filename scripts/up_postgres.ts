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
import { quote, spikeFunction } from "./up_shell.ts";

/** What {@linkcode replicaInstructions} prints about. */
export interface ReplicaCluster {
  /** The repository folder. */
  root: string;
  /** The cluster's folder. */
  dir: string;
  /** The PostgreSQL port. */
  pgPort: number;
  /** The superuser's SVID folder. */
  superuserSvidDir: string;
  /** Each replica's URL, replica i at index i-1. */
  urls: string[];
}

/**
 * The commands `up --postgres` prints, as shell lines. Like `up`'s, they
 * work from any folder and go through `deno task -q`, which echoes no
 * secret argument.
 *
 * @param c the running cluster
 * @returns the text to print
 */
export function replicaInstructions(c: ReplicaCluster): string {
  const pilot = (i: number, args: string[]) =>
    `SPIKE_SVID_DIR=${quote(c.superuserSvidDir)} SPIKE_NEXUS_API_URL=${
      c.urls[i - 1]
    } spike pilot ${args.map(quote).join(" ")}`;
  return `SPIKE is running with 3 replicas on PostgreSQL (127.0.0.1:${c.pgPort}, database spike_nexus); folder ${c.dir}

Talk to any replica from any folder, in bash or zsh. First define spike for
this shell:

  ${spikeFunction(c.root)}

Then, as the superuser:

  ${pilot(1, ["secret", "put", "apps/db", "password=s3cret"])}
  ${pilot(2, ["secret", "get", "apps/db"])}
  ${pilot(3, ["status"])}     # every replica, and the push leader

Kill one (kill -9 <pid> from pilot status) and the others go on serving.
Logs: ${c.dir}/logs. Press Ctrl-C to stop and remove everything.`;
}

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
    console.log(replicaInstructions({
      root,
      dir: cluster.dir,
      pgPort: pg.port,
      superuserSvidDir: cluster.svidDir("superuser"),
      urls: [1, 2, 3].map((i) => set.url(i)),
    }));
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
