// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task bench`: starts a local SPIKE cluster, runs every scenario,
 * prints one table and writes `results.json`, `results.md` and `chart.svg`
 * to the output folder (default `bench/`). See `--help`.
 *
 * @module
 */
import {
  type BenchOptions,
  HELP,
  OptionsError,
  parseOptions,
  type ScenarioGroup,
} from "./options.ts";
import { chart, markdown, type Row, type RunInfo, table } from "./report.ts";
import { createBenchCluster, Scenarios } from "./scenarios.ts";
import { profileScenarios } from "./profile.ts";
import { postgresScenarios } from "./postgres_scenarios.ts";
import { PgUnavailableError } from "../pg_cluster.ts";
import { readProcFile } from "./proc_stats.ts";

async function cpuModel(): Promise<string> {
  try {
    const info = await readProcFile("/proc/cpuinfo");
    return info.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

function denoDir(): string | undefined {
  const explicit = Deno.env.get("DENO_DIR");
  if (explicit) return explicit;
  const cache = Deno.env.get("XDG_CACHE_HOME") ??
    `${Deno.env.get("HOME") ?? ""}/.cache`;
  return cache.startsWith("/") ? `${cache}/deno` : undefined;
}

async function runInfo(opts: BenchOptions): Promise<RunInfo> {
  return {
    date: new Date().toISOString(),
    cpu: await cpuModel(),
    cpus: navigator.hardwareConcurrency,
    memoryGb: Deno.systemMemoryInfo().total / 1024 ** 3,
    deno: Deno.version.deno,
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    command: opts.command,
    scale: `${opts.scale.toLocaleString("en-US")} secrets × 3 versions, ${
      opts.policies.toLocaleString("en-US")
    } policies${opts.quick ? " (quick preset)" : ""}`,
    durationMs: opts.durationMs,
    size: opts.size,
  };
}

function progress(message: string): void {
  console.error(`bench: ${message}`);
}

async function runScenarios(opts: BenchOptions): Promise<{
  rows: Row[];
  notes: string[];
}> {
  const dir = await Deno.makeTempDir({ prefix: "spike-bench-" });
  const cluster = await createBenchCluster(dir);
  const scenarios = new Scenarios(cluster, opts);
  const rows: Row[] = [];
  let keep = false;
  try {
    progress("starting 5 keepers and nexus");
    await cluster.start();
    await cluster.waitUnlocked();
    await scenarios.setup();
    const c = opts.concurrency;
    const run = (group: ScenarioGroup) => opts.groups.includes(group);
    // Before anything else writes: the scale rows compare against it.
    const small = run("scale")
      ? (progress("read latency at 100 secrets"),
        await scenarios.readLatencySmall())
      : undefined;
    if (run("read-write")) {
      progress(`baseline, read, write at ${c} clients`);
      rows.push(...await scenarios.readWrite());
    }
    if (run("sdk")) {
      progress(`SDK get next to the load client at ${c} clients`);
      rows.push(...await scenarios.sdkRead());
    }
    if (run("mixed-16")) {
      progress("mixed 90/10 at 16 clients");
      rows.push(...await scenarios.mixed(16));
    }
    if (run("mixed-64")) {
      progress("mixed 90/10 and writes at 64 clients");
      rows.push(...await scenarios.mixed(64, true));
    }
    if (run("fresh")) {
      progress("new connection per request");
      rows.push(...await scenarios.freshConnections());
    }
    if (run("cipher")) {
      progress("cipher");
      rows.push(...await scenarios.cipher());
    }
    if (run("pilot")) {
      progress("pilot as a process");
      rows.push(...await scenarios.pilot(denoDir()));
    }
    if (small) {
      progress(
        `scale: ${opts.scale} secrets × 3 versions, ${opts.policies} policies`,
      );
      rows.push(...await scenarios.scale(small));
    }
    if (small && run("lifecycle")) {
      progress(
        "key lifecycle at scale: rotate, rekey, backup, then read/write",
      );
      rows.push(...await scenarios.lifecycle());
    }
    if (run("recovery")) {
      progress("recovery after kill -9");
      rows.push(await scenarios.recovery());
    }
    return { rows, notes: scenarios.notes };
  } catch (e) {
    keep = true;
    progress(`failed; logs kept in ${dir}/logs`);
    throw e;
  } finally {
    await scenarios.close();
    await cluster.close();
    if (!keep) await Deno.remove(dir, { recursive: true });
  }
}

async function main(args: string[]): Promise<number> {
  let opts: BenchOptions | "help";
  try {
    opts = parseOptions(args);
  } catch (e) {
    if (!(e instanceof OptionsError)) throw e;
    console.error(e.message);
    return 2;
  }
  if (opts === "help") {
    console.log(HELP);
    return 0;
  }
  const started = performance.now();
  if (opts.profileOnly) {
    progress(`profile: ${opts.profile.join(", ")} with nexus under --cpu-prof`);
    console.log(await profileScenarios(opts, opts.profile));
    console.log(`\nWrote ${opts.out}/nexus.cpuprofile.`);
    return 0;
  }
  const info = await runInfo(opts);
  const { rows, notes } = await runScenarios(opts);
  if (!opts.only) {
    try {
      const pg = await postgresScenarios(opts, progress);
      rows.push(...pg.rows);
      notes.push(...pg.notes);
    } catch (e) {
      if (!(e instanceof PgUnavailableError)) throw e;
      progress(`PostgreSQL scenarios skipped: ${e.message}`);
      notes.push(`PostgreSQL scenarios skipped: ${e.message}`);
    }
  }
  let profile: string | undefined;
  if (opts.profile.length > 0) {
    progress(
      `profile: ${opts.profile.join(" and ")} with nexus under --cpu-prof`,
    );
    profile = await profileScenarios(opts, opts.profile);
  }
  const failed = rows.filter((r) => r.target && !r.target.pass);
  notes.push(
    failed.length === 0
      ? "Every target met in this run."
      : `Targets missed in this run: ${
        failed.map((r) => r.scenario).join("; ")
      }.`,
  );
  await Deno.mkdir(opts.out, { recursive: true });
  const title =
    `SPIKE nexus throughput next to the baseline (${info.cpus} CPUs, Deno ${info.deno})`;
  await Deno.writeTextFile(`${opts.out}/chart.svg`, chart(rows, title));
  await Deno.writeTextFile(
    `${opts.out}/results.md`,
    markdown(info, rows, notes, "chart.svg"),
  );
  await Deno.writeTextFile(
    `${opts.out}/results.json`,
    JSON.stringify({ info, rows, notes, profile }, null, 2) + "\n",
  );
  console.log(table(rows));
  console.log("");
  for (const note of notes) console.log(`- ${note}`);
  if (profile) console.log(`\n${profile}`);
  console.log(
    `\nMachine: ${info.cpus} × ${info.cpu}, ${
      info.memoryGb.toFixed(0)
    } GiB, ${info.os}, Deno ${info.deno}; scale: ${info.scale}.`,
  );
  console.log(
    `Wrote ${opts.out}/results.json, results.md and chart.svg in ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s.`,
  );
  return 0;
}

if (import.meta.main) {
  Deno.exitCode = await main(Deno.args);
}
