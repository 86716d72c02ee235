// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A local SPIKE cluster on loopback: a dev CA (in memory), SVID directories
 * for every role, n keepers and a nexus as real processes with scoped
 * permissions.
 * The end-to-end tests, the demo and the benchmarks all use it.
 *
 * @module
 */
import { createDevCa, type DevCa, issueSvidDir } from "./dev_ca.ts";
import { type Mode, permissionFlags } from "./permission_flags.ts";
import { SpikeClient } from "./spike_client.ts";
import type { Role } from "../lib/spiffe/roles.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const MAIN = `${ROOT}/main.ts`;

/** The SVID directories the cluster issues, by name. */
export type IdentityName =
  | "nexus"
  | "superuser"
  | "recover"
  | "restore"
  | `keeper-${number}`
  | string;

/** Options for a cluster. */
export interface ClusterOptions {
  /** Number of keepers (default 3). */
  keepers?: number;
  /** Shamir threshold (default 2). */
  threshold?: number;
  /** Store backend (default sqlite). */
  backend?: "sqlite" | "memory";
  /** Keeper update interval, Go duration (default "5m"). */
  keeperUpdateInterval?: string;
  /** Extra environment for nexus. */
  nexusEnv?: Record<string, string>;
  /** Extra environment for every keeper. */
  keeperEnv?: Record<string, string>;
  /** Log level of the processes (default INFO). */
  logLevel?: string;
  /** Working directory; a fresh temp directory by default. */
  dir?: string;
  /** Trust domain (default spike.ist). */
  trustDomain?: string;
  /** Extra `deno run` flags for nexus, e.g. `--cpu-prof` (default none). */
  extraFlags?: string[];
}

/** The outcome of a finished process. */
export interface RunResult {
  /** Exit code. */
  readonly code: number;
  /** Standard output as text. */
  readonly stdout: string;
  /** Standard error as text. */
  readonly stderr: string;
}

/**
 * The Deno runtime's own variables, passed to every process so children use
 * the same module cache (no downloads) and the same CA settings as we do.
 */
export function runtimeEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  const home = Deno.env.get("HOME");
  const cache = Deno.env.get("XDG_CACHE_HOME") ??
    (home ? `${home}/.cache` : undefined);
  const denoDir = Deno.env.get("DENO_DIR") ??
    (cache ? `${cache}/deno` : undefined);
  if (denoDir) env.DENO_DIR = denoDir;
  for (const name of ["DENO_CERT", "DENO_TLS_CA_STORE", "SSL_CERT_FILE"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * A TCP port on 127.0.0.1 that nothing listens on right now.
 *
 * @returns the port
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Waits until a TCP port accepts connections.
 *
 * @param port the port on 127.0.0.1
 * @param timeoutMs how long to wait
 * @param alive returns false when the process died, to stop early
 */
export async function waitForPort(
  port: number,
  timeoutMs: number,
  alive: () => boolean = () => true,
): Promise<void> {
  if (await waitForPortOrExit(port, timeoutMs, alive) === "exited") {
    throw new Error(`The process for port ${port} exited`);
  }
}

/**
 * Waits until a TCP port accepts connections or its process exits,
 * whichever comes first: for a process that may rightly stop at once (a
 * refused start), where the port may open and close between two polls.
 *
 * @param port the port on 127.0.0.1
 * @param timeoutMs how long to wait
 * @param alive returns false once the process has exited
 * @returns which came first
 */
export async function waitForPortOrExit(
  port: number,
  timeoutMs: number,
  alive: () => boolean,
): Promise<"listening" | "exited"> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) return "exited";
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return "listening";
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`Nothing listened on port ${port} within ${timeoutMs} ms`);
}

/**
 * Runs `spike pilot …` as a process, with the flags the launcher would
 * scope to `env` and `args`, in `cwd`, seeing only `env` (and the runtime's
 * own variables).
 *
 * @param args pilot arguments
 * @param env pilot's environment
 * @param cwd the folder pilot runs in
 * @param stdin text or bytes for standard input, else none
 * @returns exit code and output
 */
export async function runPilot(
  args: string[],
  env: Record<string, string>,
  cwd: string,
  stdin?: string | Uint8Array,
): Promise<RunResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...permissionFlags("pilot", { ...env, PWD: cwd }, args),
      MAIN,
      "pilot",
      ...args,
    ],
    env: { ...runtimeEnv(), ...env },
    clearEnv: true,
    cwd,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(
      typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin,
    );
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/** A running SPIKE process. */
export class SpikeProcess {
  readonly #child: Deno.ChildProcess;
  readonly #done: Promise<Deno.CommandStatus>;
  #exited = false;
  /** The file its stdout and stderr go to. */
  readonly logFile: string;

  constructor(child: Deno.ChildProcess, logFile: string) {
    this.#child = child;
    this.logFile = logFile;
    this.#done = child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return !this.#exited;
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /**
   * Sends a signal and waits for the exit.
   *
   * @param signal SIGKILL by default (a crash)
   * @returns the exit status
   */
  async stop(signal: Deno.Signal = "SIGKILL"): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      try {
        this.#child.kill(signal);
      } catch {
        // Already gone.
      }
    }
    return await this.#done;
  }

  /**
   * Sends a signal without waiting (SIGSTOP freezes: the port stays open
   * but nothing answers; SIGCONT resumes with memory intact).
   *
   * @param signal the signal
   */
  signal(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** The exit status, when it exits. */
  get status(): Promise<Deno.CommandStatus> {
    return this.#done;
  }
}

/** A local cluster. */
export class Cluster {
  /** The working directory (SVIDs, data, logs). */
  readonly dir: string;
  /** The dev CA. */
  readonly ca: DevCa;
  /** Keeper ports, keeper i at index i-1. */
  readonly keeperPorts: number[];
  /** The nexus port. */
  readonly nexusPort: number;
  /** The options the cluster was made with. */
  readonly options:
    & Required<
      Omit<ClusterOptions, "dir" | "nexusEnv" | "keeperEnv">
    >
    & {
      nexusEnv: Record<string, string>;
      keeperEnv: Record<string, string>;
    };
  /** Running keepers by index. */
  readonly keepers = new Map<number, SpikeProcess>();
  /** The running nexus, if any. */
  nexus: SpikeProcess | undefined;
  #ownsDir: boolean;
  #logCounter = 0;

  private constructor(
    dir: string,
    ownsDir: boolean,
    ca: DevCa,
    keeperPorts: number[],
    nexusPort: number,
    options: Cluster["options"],
  ) {
    this.dir = dir;
    this.#ownsDir = ownsDir;
    this.ca = ca;
    this.keeperPorts = keeperPorts;
    this.nexusPort = nexusPort;
    this.options = options;
    this.dataDir = `${dir}/data`;
  }

  /**
   * Creates the CA and SVID directories; starts nothing.
   *
   * @param options cluster options
   * @returns the cluster
   */
  static async create(options: ClusterOptions = {}): Promise<Cluster> {
    const dir = options.dir ?? await Deno.makeTempDir({ prefix: "spike-" });
    const full = {
      keepers: options.keepers ?? 3,
      threshold: options.threshold ?? 2,
      backend: options.backend ?? "sqlite",
      keeperUpdateInterval: options.keeperUpdateInterval ?? "5m",
      logLevel: options.logLevel ?? "INFO",
      trustDomain: options.trustDomain ?? "spike.ist",
      nexusEnv: options.nexusEnv ?? {},
      keeperEnv: options.keeperEnv ?? {},
      extraFlags: options.extraFlags ?? [],
    };
    await Deno.mkdir(`${dir}/logs`, { recursive: true });
    // The CA lives in memory only: its key never reaches the disk, so no
    // stopped or killed cluster can leave it behind.
    const ca = await createDevCa(full.trustDomain);
    const keeperPorts: number[] = [];
    for (let i = 1; i <= full.keepers; i++) keeperPorts.push(freePort());
    const cluster = new Cluster(
      dir,
      options.dir === undefined,
      ca,
      keeperPorts,
      freePort(),
      full,
    );
    const td = full.trustDomain;
    await cluster.issue("nexus", `spiffe://${td}/spike/nexus`);
    for (let i = 1; i <= full.keepers; i++) {
      await cluster.issue(`keeper-${i}`, `spiffe://${td}/spike/keeper/${i}`);
    }
    for (const role of ["superuser", "recover", "restore"]) {
      await cluster.issue(role, `spiffe://${td}/spike/pilot/role/${role}`);
    }
    return cluster;
  }

  /**
   * Issues an SVID directory for `spiffeId` under `<dir>/svid/<name>`.
   *
   * @param name the directory name
   * @param spiffeId the SPIFFE ID
   * @returns the directory
   */
  async issue(name: IdentityName, spiffeId: string): Promise<string> {
    const svidDir = this.svidDir(name);
    await issueSvidDir(this.ca, spiffeId, svidDir);
    return svidDir;
  }

  /**
   * The SVID directory of an identity.
   *
   * @param name the identity name
   * @returns its directory
   */
  svidDir(name: IdentityName): string {
    return `${this.dir}/svid/${name}`;
  }

  /** The nexus API URL. */
  get nexusUrl(): string {
    return `https://127.0.0.1:${this.nexusPort}`;
  }

  /**
   * The URL of keeper `i`.
   *
   * @param i 1-based keeper index
   * @returns its base URL
   */
  keeperUrl(i: number): string {
    return `https://127.0.0.1:${this.keeperPorts[i - 1]}`;
  }

  /**
   * The nexus data directory; a test may point nexus at another one (a
   * restore on a new host).
   */
  dataDir: string;

  /** The environment nexus runs with. */
  nexusEnv(): Record<string, string> {
    return {
      SPIKE_SVID_DIR: this.svidDir("nexus"),
      SPIKE_NEXUS_TLS_PORT: `127.0.0.1:${this.nexusPort}`,
      SPIKE_NEXUS_BACKEND_STORE: this.options.backend,
      SPIKE_NEXUS_DATA_DIR: this.dataDir,
      SPIKE_NEXUS_KEEPER_PEERS: this.keeperPorts
        .map((p) => `https://127.0.0.1:${p}`).join(","),
      SPIKE_NEXUS_SHAMIR_SHARES: String(this.options.keepers),
      SPIKE_NEXUS_SHAMIR_THRESHOLD: String(this.options.threshold),
      SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL: this.options.keeperUpdateInterval,
      SPIKE_NEXUS_RECOVERY_MAX_INTERVAL: "2s",
      SPIKE_NEXUS_KEEPER_TIMEOUT: "3s",
      SPIKE_SYSTEM_LOG_LEVEL: this.options.logLevel,
      ...this.options.nexusEnv,
    };
  }

  /** The environment keeper `i` runs with. */
  keeperEnv(i: number): Record<string, string> {
    return {
      SPIKE_SVID_DIR: this.svidDir(`keeper-${i}`),
      SPIKE_KEEPER_TLS_PORT: `127.0.0.1:${this.keeperPorts[i - 1]}`,
      SPIKE_SYSTEM_LOG_LEVEL: this.options.logLevel,
      ...this.options.keeperEnv,
    };
  }

  /** The environment pilot runs with for an identity. */
  pilotEnv(identity: IdentityName): Record<string, string> {
    return {
      SPIKE_SVID_DIR: this.svidDir(identity),
      SPIKE_NEXUS_API_URL: this.nexusUrl,
      SPIKE_PILOT_RECOVERY_DIR: `${this.dir}/recover`,
      HOME: this.dir,
    };
  }

  /**
   * Spawns a mode as a process with the launcher's scoped flags, its
   * output going to a log file in the cluster folder.
   *
   * @param mode the mode
   * @param env its whole environment (besides the runtime's own)
   * @param args its arguments
   * @param flags extra `deno run` flags
   * @returns the process
   */
  spawn(
    mode: Mode,
    env: Record<string, string>,
    args: string[] = [],
    flags: string[] = [],
  ): SpikeProcess {
    const logFile = `${this.dir}/logs/${mode}-${++this.#logCounter}.log`;
    const log = Deno.openSync(logFile, { write: true, create: true });
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...permissionFlags(mode, env, args),
        ...flags,
        MAIN,
        mode,
        ...args,
      ],
      env: { ...runtimeEnv(), ...env },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Both streams go to the log, so a test sweeping logs sees whatever a
    // process prints. Read loops, not pipeTo: pipeTo into a file holds bytes
    // back until the stream ends, and tests read the logs of running
    // processes.
    const copy = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) log.writeSync(chunk);
    };
    Promise.all([copy(child.stdout), copy(child.stderr)]).finally(() =>
      log.close()
    );
    return new SpikeProcess(child, logFile);
  }

  /**
   * Starts keeper `i` and waits until it listens.
   *
   * @param i 1-based keeper index
   * @returns the process
   */
  async startKeeper(i: number): Promise<SpikeProcess> {
    const proc = this.spawn("keeper", this.keeperEnv(i));
    this.keepers.set(i, proc);
    await waitForPort(this.keeperPorts[i - 1]!, 20_000, () => proc.running);
    return proc;
  }

  /**
   * Stops keeper `i` (SIGKILL by default).
   *
   * @param i 1-based keeper index
   * @param signal the signal
   */
  async stopKeeper(i: number, signal: Deno.Signal = "SIGKILL"): Promise<void> {
    await this.keepers.get(i)?.stop(signal);
    this.keepers.delete(i);
  }

  /**
   * Starts nexus and waits until it listens (it may still be locked).
   *
   * @param options `mayExit`: nexus may rightly stop at once (a refused
   * start), so its exit ends the wait too instead of failing it; the caller
   * then reads the outcome from {@linkcode SpikeProcess.status}
   * @returns the process
   */
  async startNexus(
    options: { mayExit?: boolean } = {},
  ): Promise<SpikeProcess> {
    const proc = this.spawn(
      "nexus",
      this.nexusEnv(),
      [],
      this.options.extraFlags,
    );
    this.nexus = proc;
    const alive = () => proc.running;
    if (options.mayExit) {
      await waitForPortOrExit(this.nexusPort, 20_000, alive);
    } else {
      await waitForPort(this.nexusPort, 20_000, alive);
    }
    return proc;
  }

  /**
   * Runs `spike nexus <args>` to its end (such as `restore-backup FILE`),
   * with nexus's environment and the flags the launcher would scope to it.
   *
   * @param args nexus arguments
   * @param env nexus's environment (default: this cluster's nexus)
   * @returns exit code and output
   */
  async nexusCommand(
    args: string[],
    env: Record<string, string> = this.nexusEnv(),
  ): Promise<RunResult> {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...permissionFlags("nexus", { ...env, PWD: this.dir }, args),
        MAIN,
        "nexus",
        ...args,
      ],
      env: { ...runtimeEnv(), ...env },
      clearEnv: true,
      cwd: this.dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  }

  /**
   * Stops nexus (SIGKILL by default: a crash).
   *
   * @param signal the signal
   */
  async stopNexus(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    await this.nexus?.stop(signal);
    this.nexus = undefined;
  }

  /**
   * Starts every keeper, then nexus.
   *
   * @param options as for {@linkcode Cluster.startNexus}
   */
  async start(options: { mayExit?: boolean } = {}): Promise<void> {
    for (let i = 1; i <= this.options.keepers; i++) await this.startKeeper(i);
    await this.startNexus(options);
  }

  /**
   * Runs `spike pilot …` as a process with an identity.
   *
   * @param identity the SVID directory name (superuser, recover, …)
   * @param args pilot arguments
   * @param options stdin text and extra environment
   * @returns exit code and output
   */
  async pilot(
    identity: IdentityName,
    args: string[],
    options: { stdin?: string; env?: Record<string, string> } = {},
  ): Promise<RunResult> {
    return await runPilot(
      args,
      { ...this.pilotEnv(identity), ...options.env },
      this.dir,
      options.stdin,
    );
  }

  /**
   * Posts a JSON body to nexus over mTLS as an identity, from this process.
   *
   * @param identity the SVID directory name
   * @param route path and query, e.g. `/v1/store/secrets?action=get`
   * @param body the JSON value to send
   * @returns status and parsed JSON body (undefined when not JSON)
   */
  call(
    identity: IdentityName,
    route: string,
    body: unknown = {},
  ): Promise<{ status: number; body: Record<string, unknown> | undefined }> {
    return this.request(identity, `${this.nexusUrl}${route}`, body, "nexus");
  }

  /**
   * Posts a JSON body over mTLS as an identity to any cluster server.
   *
   * @param identity the SVID directory name
   * @param url the full URL
   * @param body the JSON value to send
   * @param serverRole the role the server must have
   * @returns status and parsed JSON body (undefined when not JSON)
   */
  async request(
    identity: IdentityName,
    url: string,
    body: unknown,
    serverRole: Role,
  ): Promise<{ status: number; body: Record<string, unknown> | undefined }> {
    const target = new URL(url);
    const client = await SpikeClient.open(
      this.svidDir(identity),
      target.origin,
      {
        role: serverRole,
        keepAlive: false,
        timeoutMs: 10_000,
      },
    );
    try {
      const reply = await client.post(
        `${target.pathname}${target.search}`,
        body,
      );
      return { status: reply.status, body: reply.json };
    } finally {
      await client.close();
    }
  }

  /**
   * Polls the operator status route until nexus reports unlocked.
   *
   * @param timeoutMs how long to wait
   */
  async waitUnlocked(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        const res = await this.call("superuser", "/v1/operator/status");
        if (res.status === 200 && res.body?.state === "unlocked") return;
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`Nexus did not unlock within ${timeoutMs} ms`);
  }

  /** Stops every process and removes the directory it created. */
  async close(): Promise<void> {
    await this.stopNexus();
    for (const i of [...this.keepers.keys()]) await this.stopKeeper(i);
    if (this.#ownsDir) await Deno.remove(this.dir, { recursive: true });
  }
}
