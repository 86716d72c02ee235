// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task up`: starts a local cluster (dev CA, 3 keepers with threshold
 * 2, nexus on SQLite) and a workload identity, keeps them running until
 * Ctrl-C, and prints the exact commands to talk to it: the pilot roles and
 * a workload with an example policy, so the policy flow can be tried end to
 * end. The commands name this repository's deno.json, so they work from any
 * folder, and use `deno task -q`, which does not echo secret arguments.
 *
 * Ctrl-C removes the cluster's folder (SVID keys, store, recovery shards).
 * The first SIGINT, SIGTERM or SIGHUP starts the cleanup; later ones (a
 * terminal's Ctrl-C reaches `deno task` too, which forwards it again) are
 * ignored until it is done. The dev CA's key never touches the disk.
 *
 * `--postgres`: three nexus replicas on a throwaway PostgreSQL instead
 * (`up_postgres.ts`).
 *
 * @module
 */
import { Cluster } from "./cluster.ts";
import { upPostgres } from "./up_postgres.ts";
import { quote, spikeFunction } from "./up_shell.ts";

/** The workload identity `up` issues, and the path its example policy opens. */
export const WORKLOAD_ID = "spiffe://spike.ist/workload/demo";
const WORKLOAD_PATH = "apps/demo/db";

const SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** Resolves at the first stop signal; listens for good, so later ones are ignored. */
function stopSignal(): Promise<Deno.Signal> {
  return new Promise((resolve) => {
    for (const signal of SIGNALS) {
      Deno.addSignalListener(signal, () => resolve(signal));
    }
  });
}

/**
 * The audit log file nexus writes in a cluster `up` starts.
 *
 * @param dir the cluster's folder
 * @returns the file's path
 */
export function auditLogPath(dir: string): string {
  return `${dir}/logs/audit.log`;
}

/**
 * The commands `up` prints, as shell lines.
 *
 * @param cluster the running cluster
 * @param root the repository folder
 * @returns the text to print
 */
export function instructions(cluster: Cluster, root: string): string {
  const svid = (identity: string) => quote(cluster.svidDir(identity));
  const pilot = (identity: string, args: string[]) =>
    `SPIKE_SVID_DIR=${svid(identity)} spike pilot ${args.map(quote).join(" ")}`;
  const idPattern = `^${WORKLOAD_ID.replaceAll(".", "\\.")}$`;
  return `SPIKE is running (nexus ${cluster.nexusUrl}); folder ${cluster.dir}

Talk to it from any folder, in bash or zsh. First define spike and the
nexus address for this shell:

  ${spikeFunction(root)}
  export SPIKE_NEXUS_API_URL=${cluster.nexusUrl} SPIKE_PILOT_RECOVERY_DIR=${
    quote(`${cluster.dir}/recover`)
  }

Then, as the superuser (secrets, policies, cipher, status):

  ${pilot("superuser", ["secret", "put", WORKLOAD_PATH, "password=s3cret"])}
  ${pilot("superuser", ["secret", "get", WORKLOAD_PATH])}
  ${pilot("superuser", ["status"])}

As a workload (${WORKLOAD_ID}): refused (exit 4) until the
superuser gives it a policy to read ${WORKLOAD_PATH}:

  ${pilot("workload", ["secret", "get", WORKLOAD_PATH, "password"])}
  ${
    pilot("superuser", [
      "policy",
      "create",
      "--name",
      "demo-read",
      "--spiffeid-pattern",
      idPattern,
      "--path-pattern",
      "^apps/demo/.*$",
      "--permissions",
      "read",
    ])
  }
  ${pilot("workload", ["secret", "get", WORKLOAD_PATH, "password"])}

Recovery shards (into ${cluster.dir}/recover), and a restore after a total loss:

  ${pilot("recover", ["operator", "recover"])}
  ${
    pilot("restore", [
      "operator",
      "restore",
      `${cluster.dir}/recover/spike.recovery.1.txt`,
    ])
  }

The audit log's hash chain, checked against nexus's newest anchor:

  ${pilot("superuser", ["audit", "verify", auditLogPath(cluster.dir)])}

Logs: ${cluster.dir}/logs. Press Ctrl-C to stop and remove the cluster.`;
}

if (import.meta.main) {
  // Listen before anything exists on disk: a Ctrl-C during start-up must
  // clean up too, not kill this process half-way.
  const stopped = stopSignal();
  if (Deno.args.includes("--postgres")) Deno.exit(await upPostgres(stopped));
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  // An audit file of its own, not lines among nexus's log, so that
  // `spike pilot audit verify` can check it.
  cluster.options.nexusEnv.SPIKE_NEXUS_AUDIT_LOG = auditLogPath(cluster.dir);
  let code = 0;
  const ready = (async () => {
    await cluster.issue("workload", WORKLOAD_ID);
    await cluster.start();
    await cluster.waitUnlocked();
  })();
  try {
    const first = await Promise.race([
      ready.then(() => "ready" as const),
      stopped.then(() => "stopped" as const),
    ]);
    if (first === "ready") {
      console.log(instructions(cluster, root));
      await stopped;
    }
  } catch (e) {
    console.error(`SPIKE did not start: ${e instanceof Error ? e.message : e}`);
    code = 1;
  } finally {
    // Stopped during start-up: let the start finish (or fail) first, so no
    // process starts after the cleanup.
    await ready.catch(() => {});
    await cluster.close();
  }
  Deno.exit(code);
}
