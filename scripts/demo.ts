// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task demo`: the whole SPIKE story on one machine, with real
 * processes and real mTLS. A dev CA, 3 keepers (threshold 2) and a nexus
 * on SQLite in a fresh folder; a secret, a workload policy, a nexus crash
 * healed by the keepers, recovery shards, the loss of every process, and a
 * restore from two shards. Exits 0 when every step worked.
 *
 * @module
 */
import { Cluster, type RunResult } from "./cluster.ts";

const WORKLOAD = "spiffe://spike.ist/workload/billing";
let step = 0;

function say(text: string): void {
  console.log(text);
}

function heading(text: string): void {
  step++;
  console.log(`\n== ${step}. ${text}`);
}

class DemoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DemoError";
  }
}

async function waiting<T>(what: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const encoder = new TextEncoder();
  Deno.stdout.writeSync(encoder.encode(`   ${what} ...`));
  const result = await work();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  Deno.stdout.writeSync(encoder.encode(` done (${seconds}s)\n`));
  return result;
}

function show(command: string, res: RunResult): void {
  say(`   $ spike pilot ${command}`);
  for (const line of (res.stdout + res.stderr).trimEnd().split("\n")) {
    if (line.trim() !== "") say(`     ${line}`);
  }
}

async function pilot(
  cluster: Cluster,
  identity: string,
  args: string[],
  expectCode = 0,
  stdin?: string,
): Promise<RunResult> {
  const res = await cluster.pilot(
    identity,
    args,
    stdin === undefined ? {} : { stdin },
  );
  show(args.join(" "), res);
  if (res.code !== expectCode) {
    throw new DemoError(
      `"spike pilot ${
        args.join(" ")
      }" exited ${res.code}, expected ${expectCode}`,
    );
  }
  return res;
}

async function demo(cluster: Cluster): Promise<void> {
  heading(
    "Start a local cluster: dev CA, 3 keepers (threshold 2), nexus on SQLite",
  );
  say(`   Folder: ${cluster.dir}`);
  for (let i = 1; i <= 3; i++) {
    await waiting(`starting keeper ${i}`, () => cluster.startKeeper(i));
  }
  await waiting("starting nexus", () => cluster.startNexus());
  await waiting(
    "waiting for nexus to create its root key and unlock",
    () => cluster.waitUnlocked(),
  );

  heading("Store and read a secret (superuser pilot)");
  await pilot(cluster, "superuser", [
    "secret",
    "put",
    "billing/db",
    "username=billing",
    "password=correct-horse-battery-staple",
  ]);
  await pilot(cluster, "superuser", ["secret", "get", "billing/db"]);

  heading("A policy lets one workload read billing/* and nothing else");
  await cluster.issue("billing", WORKLOAD);
  await pilot(cluster, "billing", ["secret", "get", "billing/db"], 4);
  await pilot(cluster, "superuser", [
    "policy",
    "create",
    "--name",
    "billing-read",
    "--spiffeid-pattern",
    WORKLOAD.replaceAll(".", "\\."),
    "--path-pattern",
    "billing/.*",
    "--permissions",
    "read",
  ]);
  await pilot(cluster, "billing", [
    "secret",
    "get",
    "billing/db",
    "password",
  ]);
  await pilot(cluster, "billing", [
    "secret",
    "put",
    "billing/db",
    "password=changed",
  ], 4);

  heading("Crash nexus (kill -9): it gets its root key back from the keepers");
  await waiting("killing nexus", () => cluster.stopNexus("SIGKILL"));
  await waiting(
    "starting a new nexus on the same store",
    () => cluster.startNexus(),
  );
  await waiting(
    "waiting for the keepers' shards to unlock it",
    () => cluster.waitUnlocked(),
  );
  await pilot(cluster, "superuser", ["secret", "get", "billing/db"]);

  heading("Export recovery shards while healthy (recover pilot)");
  await pilot(cluster, "recover", ["operator", "recover"]);
  const files: string[] = [];
  for await (const entry of Deno.readDir(`${cluster.dir}/recover`)) {
    files.push(entry.name);
  }
  files.sort();
  say(`   Recovery files: ${files.join(", ")}`);

  heading("Disaster: nexus and every keeper are lost at once");
  await waiting("killing nexus and all keepers", async () => {
    await cluster.stopNexus("SIGKILL");
    for (let i = 1; i <= 3; i++) await cluster.stopKeeper(i, "SIGKILL");
  });
  for (let i = 1; i <= 3; i++) {
    await waiting(
      `starting an empty keeper ${i}`,
      () => cluster.startKeeper(i),
    );
  }
  await waiting("starting nexus", () => cluster.startNexus());
  await pilot(cluster, "superuser", ["secret", "get", "billing/db"], 5);

  heading("Restore from two recovery shards (restore pilot)");
  for (const index of [1, 3]) {
    const shard = await Deno.readTextFile(
      `${cluster.dir}/recover/spike.recovery.${index}.txt`,
    );
    await pilot(cluster, "restore", ["operator", "restore"], 0, shard);
  }
  await pilot(cluster, "superuser", ["secret", "get", "billing/db"]);
  await waiting(
    "waiting for every keeper to hold its shard again",
    async () => {
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        const status = await cluster.call("superuser", "/v1/operator/status");
        const keepers = status.body?.keepers as { holdsShard: boolean }[];
        if (keepers?.every((k) => k.holdsShard)) return;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new DemoError("The keepers were not re-supplied with their shards");
    },
  );
  await pilot(cluster, "superuser", ["status"]);
}

if (import.meta.main) {
  const cluster = await Cluster.create({
    keepers: 3,
    threshold: 2,
    logLevel: "WARN",
  });
  let code = 0;
  try {
    await demo(cluster);
    say("\nDemo complete: every step worked.");
  } catch (e) {
    console.error(`\nDemo failed: ${e instanceof Error ? e.message : e}`);
    console.error(`Process logs are kept in ${cluster.dir}/logs`);
    code = 1;
  } finally {
    if (code === 0) await cluster.close();
    else {
      await cluster.stopNexus();
      for (const i of [...cluster.keepers.keys()]) await cluster.stopKeeper(i);
    }
  }
  Deno.exit(code);
}
