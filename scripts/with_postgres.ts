// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Runs a deno command with one throwaway PostgreSQL cluster for all of it:
 * `deno task test:pg` (what CI runs) is `deno task test` with the
 * cluster's superuser URL in `SPIKE_TEST_DATABASE_URL`, so the PostgreSQL
 * test files share one cluster instead of starting one each. When
 * PostgreSQL cannot start here, the command still runs (SQLite and memory
 * tests included) with the PostgreSQL tests skipped, and this says so
 * loudly before and after.
 *
 *   deno run … scripts/with_postgres.ts <deno arguments…>
 *
 * @module
 */
import { startPgCluster } from "./pg_cluster.ts";

function banner(message: string): void {
  const line = "!".repeat(78);
  console.error(`\n${line}\n!!! ${message}\n${line}\n`);
}

async function main(args: string[]): Promise<number> {
  const env: Record<string, string> = {};
  let skipped: string | undefined;
  let cluster;
  try {
    cluster = await startPgCluster({ durable: false });
    env.SPIKE_TEST_DATABASE_URL = cluster.adminUrl();
    console.error(`PostgreSQL test cluster on 127.0.0.1:${cluster.port}`);
  } catch (e) {
    skipped = `PostgreSQL tests SKIPPED: ${(e as Error).message}`;
    env.SPIKE_TEST_POSTGRES = "unavailable";
    banner(skipped);
  }
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args,
      env,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const stop = () => child.kill("SIGTERM");
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    const { code } = await child.status;
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    if (skipped) banner(skipped);
    return code;
  } finally {
    await cluster?.stop();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
