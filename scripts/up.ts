// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task up`: starts a local cluster (dev CA, 3 keepers with threshold
 * 2, nexus on SQLite) and keeps it running until Ctrl-C, printing the
 * exact commands to talk to it with each pilot role. `--postgres`: three
 * nexus replicas on a throwaway PostgreSQL instead (`up_postgres.ts`).
 *
 * @module
 */
import { Cluster } from "./cluster.ts";
import { waitForShutdown } from "../lib/shutdown.ts";
import { upPostgres } from "./up_postgres.ts";

if (Deno.args.includes("--postgres")) {
  await upPostgres();
  Deno.exit(0);
}

const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
try {
  await cluster.start();
  await cluster.waitUnlocked();
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const env = (role: string) =>
    Object.entries(cluster.pilotEnv(role))
      .filter(([k]) => k !== "HOME")
      .map(([k, v]) => `${k}=${v}`).join(" ");
  console.log(
    `SPIKE is running (nexus ${cluster.nexusUrl}); folder ${cluster.dir}

Talk to it (run from ${root}):

  # superuser: secrets, policies, cipher
  ${env("superuser")} deno task spike pilot secret put apps/db password=s3cret
  ${env("superuser")} deno task spike pilot secret get apps/db
  ${env("superuser")} deno task spike pilot status

  # recover: export recovery shards into ${cluster.dir}/recover
  ${env("recover")} deno task spike pilot operator recover

  # restore: feed one shard per call (after a total loss)
  ${
      env("restore")
    } deno task spike pilot operator restore < ${cluster.dir}/recover/spike.recovery.1.txt

Logs: ${cluster.dir}/logs. Press Ctrl-C to stop and remove the cluster.`,
  );
  await waitForShutdown();
} finally {
  await cluster.close();
}
