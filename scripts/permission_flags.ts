// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Computes the scoped `deno run` permission flags for one mode from the
 * configuration it will run with: listen and peer addresses, the SVID
 * directory or Workload API socket, data and recovery folders. The launcher
 * task, the demo, the benchmarks and the end-to-end tests all start modes
 * with these flags, never with `-A`.
 *
 * Values are read as the modes read them. A value the mode would refuse
 * grants nothing, so the mode starts and explains the problem itself.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ConfigError, parseListenAddress } from "../lib/config/env.ts";
import { resolveRecoveryDir } from "../lib/config/recovery_dir.ts";
import { normalizeGoStyleFlags } from "../lib/go_style_flags.ts";
import {
  databaseFiles,
  readDatabaseSettings,
} from "../lib/config/database_url.ts";
import {
  FEDERATED_BUNDLES_VARIABLE,
  parseFederatedBundles,
} from "../lib/spiffe/bundle_config.ts";
import {
  EndpointAddressError,
  parseEndpointAddress,
} from "../lib/spiffe/endpoint_address.ts";

/** A SPIKE mode. */
export type Mode = "nexus" | "keeper" | "pilot";

/** The environment variables a mode may read; everything else reads as unset. */
export const ENV_ALLOW = ["SPIKE_*", "SPIFFE_ENDPOINT_SOCKET", "HOME", "USER"];

type Env = Record<string, string | undefined>;

interface Grants {
  net: string[];
  read: string[];
  write: string[];
}

/** A variable as the modes read it (`envString`): trimmed, blank is unset. */
function setting(env: Env, name: string): string | undefined {
  return env[name]?.trim() || undefined;
}

function listenHosts(name: string, value: string): string[] {
  let address: { host: string; port: number };
  try {
    address = parseListenAddress(name, value);
  } catch (e) {
    if (e instanceof ConfigError) return [];
    throw e;
  }
  const { host, port } = address;
  return host === "" || host === "0.0.0.0" || host === "::"
    ? [`0.0.0.0:${port}`, `[::]:${port}`]
    : [`${host.includes(":") ? `[${host}]` : host}:${port}`];
}

/** host:port of an https URL, or nothing for a value the modes refuse. */
function httpsHost(value: string): string[] {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return [];
  }
  if (url.protocol !== "https:" || url.hostname === "") return [];
  return [`${url.hostname}:${url.port || "443"}`];
}

/** The federated bundle files an SVID directory source reads. */
function federatedBundleFiles(env: Env, cwd: string): string[] {
  const raw = setting(env, FEDERATED_BUNDLES_VARIABLE);
  if (raw === undefined) return [];
  try {
    return [...parseFederatedBundles(raw).values()].map((p) => resolve(cwd, p));
  } catch (e) {
    if (e instanceof ConfigError) return [];
    throw e;
  }
}

function identityGrants(env: Env, cwd: string): Grants {
  const svidDir = setting(env, "SPIKE_SVID_DIR");
  if (svidDir) {
    return {
      net: [],
      read: [resolve(cwd, svidDir), ...federatedBundleFiles(env, cwd)],
      write: [],
    };
  }
  const endpoint = setting(env, "SPIFFE_ENDPOINT_SOCKET");
  if (endpoint === undefined) return { net: [], read: [], write: [] };
  let address: ReturnType<typeof parseEndpointAddress>;
  try {
    address = parseEndpointAddress(endpoint);
  } catch (e) {
    if (e instanceof EndpointAddressError) {
      return { net: [], read: [], write: [] };
    }
    throw e;
  }
  if (address.kind === "unix") {
    // Deno asks for read and write access to a unix socket it connects to.
    const path = address.path;
    return { net: [`unix:${path}`], read: [path], write: [path] };
  }
  const host = address.ipv6 ? `[${address.host}]` : address.host;
  return { net: [`${host}:${address.port}`], read: [], write: [] };
}

/** The data folder as nexus resolves it (`resolveDataDir`), if it can. */
function nexusDataDir(env: Env, cwd: string): string | undefined {
  const custom = setting(env, "SPIKE_NEXUS_DATA_DIR");
  if (custom) return resolve(cwd, custom);
  const home = setting(env, "HOME");
  return home?.startsWith("/") ? join(home, ".spike", "data") : undefined;
}

/**
 * The database host:port and the TLS files nexus reads, when the postgres
 * backend is chosen and its settings are valid.
 */
function databaseGrants(env: Env, cwd: string): Grants {
  const none = { net: [], read: [], write: [] };
  if (setting(env, "SPIKE_NEXUS_BACKEND_STORE")?.toLowerCase() !== "postgres") {
    return none;
  }
  let db: ReturnType<typeof readDatabaseSettings>;
  try {
    db = readDatabaseSettings((name) => setting(env, name));
  } catch (e) {
    if (e instanceof ConfigError) return none;
    throw e;
  }
  const host = db.host.includes(":") ? `[${db.host}]` : db.host;
  return {
    net: [`${host}:${db.port}`],
    read: databaseFiles(db).map((f) => resolve(cwd, f)),
    write: [],
  };
}

/** The recovery folder as pilot resolves it. */
function pilotRecoveryDir(env: Env, cwd: string): string {
  return resolve(resolveRecoveryDir((name) => env[name], cwd));
}

/** How a pilot command that touches files reads its arguments. */
export interface PilotFileCommand {
  /** The command's parseArgs options, as pilot declares them. */
  options: Record<
    string,
    { type: "string" | "boolean"; short?: string }
  >;
  /** Options (long names) whose value is a file pilot reads. */
  reads?: readonly string[];
  /** Options (long names) whose value is a file pilot creates or replaces. */
  writes?: readonly string[];
  /**
   * A suffix pilot writes those files under first, renaming them when
   * whole (`.partial` for a backup): Deno needs read and write of it.
   */
  tempSuffix?: string;
  /** The positional arguments are files pilot reads. */
  readsPositionals?: boolean;
  /**
   * The positional arguments after the first may name files pilot reads:
   * `key=@file` and `@file` (secret put).
   */
  readsAtFiles?: boolean;
  /** What the command does with the recovery folder. */
  recoveryDir?: "read" | "write";
}

const CIPHER: PilotFileCommand = {
  options: {
    file: { type: "string", short: "f" },
    out: { type: "string", short: "o" },
    json: { type: "boolean" },
  },
  reads: ["file"],
  writes: ["out"],
};

/**
 * The pilot commands that touch files, by their first two words, with the
 * same options as pilot's own parser (modes/pilot): the arguments are parsed
 * as pilot parses them, so every form it accepts (`-f x`, `-fx`, `--file=x`)
 * names the same file here. `-f` is a file only for cipher; elsewhere it is
 * the output format.
 */
export const PILOT_FILE_COMMANDS: Readonly<Record<string, PilotFileCommand>> = {
  "cipher encrypt": CIPHER,
  "cipher decrypt": CIPHER,
  "policy apply": {
    options: {
      file: { type: "string" },
      name: { type: "string" },
      "spiffeid-pattern": { type: "string" },
      "path-pattern": { type: "string" },
      permissions: { type: "string" },
    },
    reads: ["file"],
  },
  "secret put": { options: { cas: { type: "string" } }, readsAtFiles: true },
  "operator recover": { options: {}, recoveryDir: "write" },
  "operator restore": { options: {}, readsPositionals: true },
  "operator backup": {
    options: { out: { type: "string", short: "o" } },
    writes: ["out"],
    tempSuffix: ".partial",
  },
  "operator drill": {
    options: { format: { type: "string", short: "f" } },
    readsPositionals: true,
    recoveryDir: "read",
  },
};

function pilotGrants(env: Env, args: readonly string[], cwd: string): Grants {
  const grants: Grants = { net: [], read: [], write: [] };
  const url = setting(env, "SPIKE_NEXUS_API_URL") ?? "https://localhost:8553";
  grants.net.push(...httpsHost(url));
  const command = PILOT_FILE_COMMANDS[`${args[0]} ${args[1]}`];
  if (command === undefined) return grants;
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      // Read as pilot reads them: `-file=x` is `--file=x` there too.
      args: normalizeGoStyleFlags(args.slice(2), command.options),
      options: { ...command.options, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: true,
    });
  } catch {
    // Pilot refuses these arguments before it touches any file.
    return grants;
  }
  if (parsed.values.help === true) return grants;
  const file = (value: unknown): string[] =>
    typeof value === "string" && value !== "" && value !== "-"
      ? [resolve(cwd, value)]
      : [];
  for (const name of command.reads ?? []) {
    grants.read.push(...file(parsed.values[name]));
  }
  for (const name of command.writes ?? []) {
    for (const path of file(parsed.values[name])) {
      grants.write.push(path);
      if (command.tempSuffix) {
        grants.read.push(path + command.tempSuffix);
        grants.write.push(path + command.tempSuffix);
      }
    }
  }
  if (command.readsPositionals) {
    grants.read.push(
      ...parsed.positionals.filter((p) => p !== "" && p !== "-").map((p) =>
        resolve(cwd, p)
      ),
    );
  }
  if (command.readsAtFiles) {
    for (const arg of parsed.positionals.slice(1)) {
      // `@file` alone, or the value of `key=@file` (split at the first "=").
      const value = arg.startsWith("@") ? arg : arg.slice(arg.indexOf("=") + 1);
      if (value.startsWith("@")) grants.read.push(...file(value.slice(1)));
    }
  }
  if (command.recoveryDir !== undefined) {
    const dir = pilotRecoveryDir(env, cwd);
    grants.read.push(dir);
    if (command.recoveryDir === "write") grants.write.push(dir);
  }
  return grants;
}

/** The file `spike nexus restore-backup FILE` reads, if that is the command. */
function restoreBackupFile(args: readonly string[], cwd: string): string[] {
  if (args[0] !== "restore-backup") return [];
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: args.slice(1),
      options: { help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: true,
    });
  } catch {
    // Nexus refuses these arguments before it reads anything.
    return [];
  }
  const [file, ...more] = parsed.positionals;
  if (parsed.values.help === true || file === undefined || file === "") {
    return [];
  }
  return more.length === 0 ? [resolve(cwd, file)] : [];
}

/**
 * `--allow-<name>=…`, leaving out entries Deno would split at a comma; no
 * flag at all for no entries (Deno refuses an empty list).
 */
function allowFlag(name: string, entries: readonly string[]): string[] {
  const usable = [...new Set(entries)].filter((e) => !e.includes(","));
  return usable.length > 0 ? [`--allow-${name}=${usable.join(",")}`] : [];
}

/**
 * The scoped permission flags for running `mode` with `env`.
 *
 * @param mode the mode to run
 * @param env the environment the mode will see; `PWD` is the folder the mode
 *   runs in, against which relative paths resolve (default: this process's)
 * @param args the mode's own arguments (pilot: the files a command reads or
 *   writes, see {@linkcode PILOT_FILE_COMMANDS}; nexus: the file of
 *   `restore-backup`)
 * @returns flags for `deno run`
 */
export function permissionFlags(
  mode: Mode,
  env: Env,
  args: readonly string[] = [],
): string[] {
  const cwd = env.PWD ?? Deno.cwd();
  const identity = identityGrants(env, cwd);
  const net = [...identity.net];
  const read = [...identity.read];
  const write = [...identity.write];
  if (mode === "keeper") {
    net.push(...listenHosts(
      "SPIKE_KEEPER_TLS_PORT",
      setting(env, "SPIKE_KEEPER_TLS_PORT") ?? ":8443",
    ));
  } else if (mode === "nexus") {
    net.push(...listenHosts(
      "SPIKE_NEXUS_TLS_PORT",
      setting(env, "SPIKE_NEXUS_TLS_PORT") ?? ":8553",
    ));
    for (
      const peer of (setting(env, "SPIKE_NEXUS_KEEPER_PEERS") ?? "").split(",")
    ) {
      net.push(...httpsHost(peer.trim()));
    }
    const database = databaseGrants(env, cwd);
    net.push(...database.net);
    read.push(...database.read);
    const dataDir = database.net.length > 0
      ? undefined
      : nexusDataDir(env, cwd);
    if (dataDir !== undefined) {
      // The parent is read to check it exists before the folder is created.
      read.push(dataDir, dirname(dataDir));
      write.push(dataDir);
    }
    const auditLog = setting(env, "SPIKE_NEXUS_AUDIT_LOG");
    if (auditLog) write.push(resolve(cwd, auditLog));
    read.push(...restoreBackupFile(args, cwd));
  } else {
    const pilot = pilotGrants(env, args, cwd);
    net.push(...pilot.net);
    read.push(...pilot.read);
    write.push(...pilot.write);
  }
  return [
    "--no-prompt",
    ...allowFlag("net", net),
    ...allowFlag("read", read),
    ...allowFlag("write", write),
    `--allow-env=${ENV_ALLOW.join(",")}`,
    "--ignore-env",
  ];
}
