// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Computes the scoped `deno run` permission flags for one mode from the
 * configuration it will run with: listen and peer addresses, the SVID
 * directory or Workload API socket, data and recovery folders. The launcher
 * task, the demo, the benchmarks and the end-to-end tests all start modes
 * with these flags, never with `-A`.
 *
 * @module
 */

/** A SPIKE mode. */
export type Mode = "nexus" | "keeper" | "pilot";

/** The environment variables a mode may read; everything else reads as unset. */
export const ENV_ALLOW = ["SPIKE_*", "SPIFFE_ENDPOINT_SOCKET", "HOME", "USER"];

function listenHosts(address: string): string[] {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon);
  const port = address.slice(colon + 1);
  return host === "" || host === "0.0.0.0" || host === "::" || host === "[::]"
    ? [`0.0.0.0:${port}`, `[::]:${port}`]
    : [
      `${
        host.includes(":") && !host.startsWith("[") ? `[${host}]` : host
      }:${port}`,
    ];
}

function urlHost(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || "443"}`;
}

function home(env: Record<string, string | undefined>): string {
  return env.HOME ?? "/root";
}

function socketFlags(env: Record<string, string | undefined>) {
  if (env.SPIKE_SVID_DIR) {
    return { net: [], read: [env.SPIKE_SVID_DIR], write: [] };
  }
  const socket = env.SPIFFE_ENDPOINT_SOCKET ??
    "unix:///tmp/spire-agent/public/api.sock";
  if (socket.startsWith("unix:")) {
    // Deno asks for read and write access to a unix socket it connects to.
    const path = socket.replace(/^unix:(\/\/)?/, "");
    return { net: [`unix:${path}`], read: [path], write: [path] };
  }
  return { net: [socket.replace(/^tcp:\/\//, "")], read: [], write: [] };
}

/** Command-line options whose value is a file pilot reads or writes. */
const PILOT_FILE_OPTIONS = new Set(["-f", "--file", "-o", "--out"]);

function pilotFiles(args: readonly string[], cwd: string): string[] {
  const files: string[] = [];
  // `operator drill` takes recovery files as positional arguments.
  const drillFiles = args[0] === "operator" && args[1] === "drill"
    ? args.slice(2).filter((a) => !a.startsWith("-"))
    : [];
  for (const file of drillFiles) {
    files.push(file.startsWith("/") ? file : `${cwd}/${file}`);
  }
  args.forEach((arg, i) => {
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg : arg.slice(0, eq);
    if (!PILOT_FILE_OPTIONS.has(name)) return;
    const value = eq === -1 ? args[i + 1] : arg.slice(eq + 1);
    if (value && value !== "-") {
      files.push(value.startsWith("/") ? value : `${cwd}/${value}`);
    }
  });
  return files;
}

/**
 * The scoped permission flags for running `mode` with `env`.
 *
 * @param mode the mode to run
 * @param env the environment the mode will see
 * @param args the mode's own arguments (pilot: files named by -f / -o)
 * @returns flags for `deno run`
 */
export function permissionFlags(
  mode: Mode,
  env: Record<string, string | undefined>,
  args: readonly string[] = [],
): string[] {
  const identity = socketFlags(env);
  const net = [...identity.net];
  const read = [...identity.read];
  const write = [...identity.write];
  if (mode === "keeper") {
    net.push(...listenHosts(env.SPIKE_KEEPER_TLS_PORT ?? ":8443"));
  } else if (mode === "nexus") {
    net.push(...listenHosts(env.SPIKE_NEXUS_TLS_PORT ?? ":8553"));
    for (const peer of (env.SPIKE_NEXUS_KEEPER_PEERS ?? "").split(",")) {
      if (peer.trim()) net.push(urlHost(peer.trim()));
    }
    const dataDir = env.SPIKE_NEXUS_DATA_DIR ?? `${home(env)}/.spike/data`;
    // The parent is read to check it exists before the folder is created.
    read.push(dataDir, dataDir.replace(/\/[^/]*\/?$/, "") || "/");
    write.push(dataDir);
    if (env.SPIKE_NEXUS_AUDIT_LOG) write.push(env.SPIKE_NEXUS_AUDIT_LOG);
  } else {
    net.push(urlHost(env.SPIKE_NEXUS_API_URL ?? "https://localhost:8553"));
    const recoveryDir = env.SPIKE_PILOT_RECOVERY_DIR ??
      `${home(env)}/.spike/recover`;
    const files = pilotFiles(args, env.PWD ?? Deno.cwd());
    read.push(recoveryDir, ...files);
    write.push(recoveryDir, ...files);
  }
  const flags = [
    "--no-prompt",
    `--allow-net=${net.join(",")}`,
    `--allow-read=${read.join(",")}`,
    `--allow-env=${ENV_ALLOW.join(",")}`,
    "--ignore-env",
  ];
  if (write.length > 0) flags.push(`--allow-write=${write.join(",")}`);
  return flags;
}
