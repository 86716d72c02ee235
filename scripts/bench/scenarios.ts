// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The benchmark scenarios against one local cluster: baseline, secret
 * read and write, mixed load, a handshake per request, pilot as a process,
 * cipher, scale and recovery. Each returns rows for the results table.
 *
 * @module
 */
import { Cluster, runtimeEnv } from "../cluster.ts";
import { createMtlsClient, type MtlsClient } from "../../lib/mtls/client.ts";
import { openFileSvidSource } from "../../lib/spiffe/file_source.ts";
import { hasRole } from "../../lib/spiffe/roles.ts";
import type { LoadConfig, RequestSpec } from "./load_spec.ts";
import { type Measured, runLoad } from "./load.ts";
import { READY_MARKER } from "./baseline_server.ts";
import { sample } from "./proc_stats.ts";
import { measureCommitRate } from "./sqlite_commit.ts";
import type { BenchOptions } from "./options.ts";
import type { Row, Target } from "./report.ts";

const BASELINE_SERVER = new URL("./baseline_server.ts", import.meta.url)
  .pathname;
const PILOT_FLOOR = new URL("./pilot_floor.ts", import.meta.url).pathname;

/** The workload identity the policy-checked scenarios run as. */
export const WORKLOAD_ID = "spiffe://spike.ist/workload/bench";

/** The workload identity that lists the scale secrets by policy. */
const LISTER_ID = "spiffe://spike.ist/workload/bench-list";

const SECRETS = "/v1/store/secrets";
/** The wire forms of the cipher API. */
export type CipherForm = "json" | "stream";
/** Plaintext sizes of the cipher scenarios: small, and the largest taken. */
export const CIPHER_SIZES = [64, 64 * 1024 - 16] as const;

// The load client runs its JavaScript on one thread: past this share of a
// core it is the limit.
const CLIENT_BOUND_CORES = 0.8;
const READ_PATHS = 100;
const WRITE_PATHS = 1_000;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function deferred(): Promise<void> & { resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return Object.assign(promise, { resolve });
}

// Median, 99th percentile and slowest of whole-process wall times.
function processTimes(
  times: number[],
): { p50: number; p99: number; max: number } {
  const sorted = [...times].sort((a, b) => a - b);
  return {
    p50: sorted[Math.floor(sorted.length / 2)]!,
    p99: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!,
    max: sorted[sorted.length - 1]!,
  };
}

// The issue's goal for a scenario: at least `rps` times the baseline's
// req/s and at most `cpu` times its server CPU per request.
function costTarget(
  m: Measured,
  base: Measured,
  rps: number,
  cpu: number,
): Target {
  return {
    text: `≥ ${rps}× baseline, ≤ ${cpu.toFixed(1)}× its CPU`,
    pass: m.load.rps >= rps * base.load.rps &&
      m.server.cpuUsPerRequest <= cpu * base.server.cpuUsPerRequest,
  };
}

/** Raised when a scenario cannot run; the message says why. */
export class ScenarioError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ScenarioError";
  }
}

/** The baseline server process (a trivial mTLS handler). */
export class Baseline {
  readonly url: string;
  readonly #child: Deno.ChildProcess;

  private constructor(url: string, child: Deno.ChildProcess) {
    this.url = url;
    this.#child = child;
  }

  static async start(svidDir: string, size: number): Promise<Baseline> {
    const port = freePort();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        `--allow-read=${svidDir}`,
        `--allow-net=127.0.0.1:${port}`,
        "--allow-env=SPIKE_*",
        BASELINE_SERVER,
        svidDir,
        String(port),
        String(size),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const ready = deferred();
    const reader = child.stdout.pipeThrough(new TextDecoderStream());
    // Keep draining stdout for the life of the process.
    (async () => {
      for await (const chunk of reader) {
        if (chunk.includes(READY_MARKER)) ready.resolve();
      }
    })();
    const exited = child.status.then((s) => {
      throw new ScenarioError(`Baseline server exited (${s.code})`);
    });
    await Promise.race([ready, exited]);
    exited.catch(() => {});
    return new Baseline(`https://127.0.0.1:${port}`, child);
  }

  get pid(): number {
    return this.#child.pid;
  }

  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await this.#child.status;
  }
}

/**
 * The cluster every benchmark pass measures: 5 keepers, threshold 3, nexus
 * on SQLite in `dir`, with its audit log in a file there, as in production.
 *
 * @param dir the cluster folder
 * @param extraFlags extra `deno run` flags for nexus (a profiler)
 * @returns the cluster, not started
 */
export function createBenchCluster(
  dir: string,
  extraFlags: string[] = [],
): Promise<Cluster> {
  return Cluster.create({
    dir,
    keepers: 5,
    threshold: 3,
    logLevel: "WARN",
    nexusEnv: { SPIKE_NEXUS_AUDIT_LOG: `${dir}/audit.log` },
    extraFlags,
  });
}

/** Runs the scenarios against a started, unlocked cluster. */
export class Scenarios {
  readonly #cluster: Cluster;
  readonly #opts: BenchOptions;
  readonly #value: string;
  #baseline: Baseline | undefined;
  /** Remarks for the report, gathered while running. */
  readonly notes: string[] = [];

  /**
   * Binds the scenarios to a cluster.
   *
   * @param cluster a started, unlocked cluster
   * @param opts the options
   */
  constructor(cluster: Cluster, opts: BenchOptions) {
    this.#cluster = cluster;
    this.#opts = opts;
    this.#value = "v".repeat(opts.size);
  }

  get #nexusPid(): number {
    const nexus = this.#cluster.nexus;
    if (!nexus?.running) throw new ScenarioError("Nexus is not running");
    return nexus.pid;
  }

  #config(
    identity: string,
    requests: RequestSpec[],
    overrides: Partial<LoadConfig> = {},
  ): LoadConfig {
    return {
      url: this.#cluster.nexusUrl,
      svidDir: this.#cluster.svidDir(identity),
      concurrency: this.#opts.concurrency,
      keepAlive: true,
      warmupMs: this.#opts.warmupMs,
      durationMs: this.#opts.durationMs,
      requests,
      ...overrides,
    };
  }

  #readSpec(prefix = "bench/r", paths = READ_PATHS): RequestSpec {
    return {
      label: "read",
      route: `${SECRETS}?action=get`,
      body: JSON.stringify({ path: `${prefix}/{i}` }),
      modulo: paths,
    };
  }

  #sdkReadSpec(): RequestSpec {
    return { ...this.#readSpec(), path: "bench/r/{i}" };
  }

  #writeSpec(prefix = "bench/w", paths = WRITE_PATHS): RequestSpec {
    return {
      label: "write",
      route: SECRETS,
      body: JSON.stringify({
        path: `${prefix}/{i}`,
        values: { value: this.#value },
      }),
      modulo: paths,
    };
  }

  /**
   * Creates the workload identity, its policies and the secrets it reads,
   * and starts the baseline server.
   *
   * @param withBaseline whether to start the baseline server
   */
  async setup(withBaseline = true): Promise<void> {
    const cluster = this.#cluster;
    await cluster.issue("workload", WORKLOAD_ID);
    const policies = [
      {
        name: "workload-bench",
        spiffeidPattern: "spiffe://spike\\.ist/workload/bench",
        pathPattern: "bench/.*",
        permissions: ["read", "write"],
      },
      {
        name: "workload-bench-cipher",
        spiffeidPattern: "spiffe://spike\\.ist/workload/bench",
        pathPattern: "spike/system/cipher/exec",
        permissions: ["execute"],
      },
    ];
    for (const policy of policies) {
      const res = await cluster.call("superuser", "/v1/acl/policy", policy);
      if (res.status !== 200) {
        throw new ScenarioError(
          `Creating policy ${policy.name} failed: HTTP ${res.status}`,
        );
      }
    }
    await runLoad(
      this.#config("superuser", [this.#writeSpec("bench/r", READ_PATHS)], {
        count: READ_PATHS,
        concurrency: 8,
      }),
      this.#nexusPid,
    );
    if (withBaseline) {
      this.#baseline = await Baseline.start(
        cluster.svidDir("nexus"),
        this.#opts.size,
      );
    }
  }

  /** Stops the baseline server. */
  async close(): Promise<void> {
    await this.#baseline?.stop();
    this.#baseline = undefined;
  }

  // Measured next to each group of scenarios, not once per run: on a
  // shared machine the ceiling moves, and a ratio should compare like with
  // like.
  async #baselineRun(
    concurrency: number,
    keepAlive: boolean,
  ): Promise<Measured> {
    const baseline = this.#baseline;
    if (!baseline) throw new ScenarioError("Baseline server is not running");
    return await runLoad(
      this.#config("workload", [this.#readSpec()], {
        url: baseline.url,
        concurrency,
        keepAlive,
      }),
      baseline.pid,
    );
  }

  #baselineRow(id: string, m: Measured, concurrency: number): Row {
    if (m.client.cores >= CLIENT_BOUND_CORES) {
      this.notes.push(
        `${id}: the load client kept ${
          (m.client.cores * 100).toFixed(0)
        } % of a core busy (${
          m.client.cpuUsPerRequest.toFixed(0)
        } µs per request): the client, not the handler, set this baseline's pace, so the req/s ratios next to it understate the server; its CPU ratios do not.`,
      );
    }
    return this.#row(
      id,
      "Baseline: trivial mTLS handler",
      m,
      concurrency,
      m,
    );
  }

  #row(
    id: string,
    scenario: string,
    m: Measured,
    concurrency: number,
    base?: Measured,
    extra: Partial<Row> = {},
  ): Row {
    return {
      id,
      scenario,
      clients: concurrency,
      rps: m.load.rps,
      ...(base
        ? { ratio: m.load.rps / base.load.rps, baselineRps: base.load.rps }
        : {}),
      p50: m.load.latency.p50,
      p99: m.load.latency.p99,
      max: m.load.latency.max,
      cpuUsPerRequest: m.server.cpuUsPerRequest,
      ...(base
        ? { cpuRatio: m.server.cpuUsPerRequest / base.server.cpuUsPerRequest }
        : {}),
      clientCpuUsPerRequest: m.client.cpuUsPerRequest,
      clientCores: m.client.cores,
      rssMb: m.server.peakRssMb,
      ...extra,
    };
  }

  /**
   * Secret read as a policy-checked workload, one client, at 100 secrets:
   * the latency the scale scenario compares against.
   *
   * @returns the measurement
   */
  readLatencySmall(): Promise<Measured> {
    return runLoad(
      this.#config("workload", [this.#readSpec()], { concurrency: 1 }),
      this.#nexusPid,
    );
  }

  /**
   * Secret reads as the workload at the main concurrency.
   *
   * @returns the measurement
   */
  loadRead(): Promise<Measured> {
    return runLoad(
      this.#config("workload", [this.#readSpec()]),
      this.#nexusPid,
    );
  }

  /**
   * Secret writes as the workload at the main concurrency.
   *
   * @returns the measurement
   */
  loadWrite(): Promise<Measured> {
    return runLoad(
      this.#config("workload", [this.#writeSpec()]),
      this.#nexusPid,
    );
  }

  /**
   * Secret read and write at the main concurrency, and the raw SQLite
   * commit rate next to the write.
   *
   * @returns rows: baseline, read, write, raw commits
   */
  async readWrite(): Promise<Row[]> {
    const c = this.#opts.concurrency;
    const base = await this.#baselineRun(c, true);
    const read = await this.loadRead();
    const write = await this.loadWrite();
    const { durationMs, size } = this.#opts;
    const raw = await measureCommitRate(this.#cluster.dir, durationMs, size);
    const batched = await measureCommitRate(
      this.#cluster.dir,
      durationMs,
      size,
      c,
    );
    const rawRate = Math.round(raw.commitsPerSecond);
    const writeRate = Math.round(write.load.rps);
    this.notes.push(
      writeRate > rawRate
        ? `Group commit: nexus acknowledged ${writeRate} durable writes/s at ${c} clients, more than the ${rawRate} single-row commits/s raw node:sqlite manages on the same disk: concurrent writes share one transaction and one fsync, and none is acknowledged before its commit.`
        : `Durable writes: raw node:sqlite commits ${rawRate} single-row transactions/s on this disk (${
          Math.round(batched.rowsPerSecond)
        } rows/s in ${c}-row transactions), nexus acknowledges ${writeRate} writes/s at ${c} clients: the fsync is not the limit here, the request path is (see CPU µs/req). Nexus still batches concurrent writes into one transaction (group commit) and acknowledges none before its commit, which matters on disks with slow fsync.`,
    );
    return [
      this.#baselineRow(`baseline-${c}`, base, c),
      this.#row(
        "read",
        "Secret read (workload, policy-checked)",
        read,
        c,
        base,
        { target: costTarget(read, base, 0.7, 2.0) },
      ),
      this.#row(
        "write",
        "Secret write (durable, group commit)",
        write,
        c,
        base,
        { target: costTarget(write, base, 0.35, 3.5) },
      ),
      {
        id: "sqlite-raw-commit",
        scenario: "Raw node:sqlite commit (1 row per txn, fsync)",
        clients: 1,
        rps: raw.commitsPerSecond,
        p50: raw.p50,
        p99: raw.p99,
        max: raw.max,
      },
      {
        id: "sqlite-raw-batch",
        scenario: `Raw node:sqlite commit (${c} rows per txn), rows/s`,
        clients: 1,
        rps: batched.rowsPerSecond,
        p50: batched.p50,
        p99: batched.p99,
        max: batched.max,
      },
    ];
  }

  /**
   * The same secret read, back to back, from the bench's own load client
   * and through the workload SDK's `get` (one client, warm connection
   * pool, values parsed as bytes and zeroed), at the main concurrency.
   *
   * @returns rows: load client, SDK
   */
  async sdkRead(): Promise<Row[]> {
    const c = this.#opts.concurrency;
    const client = await runLoad(
      this.#config("workload", [this.#readSpec()]),
      this.#nexusPid,
    );
    const sdk = await runLoad(
      this.#config("workload", [this.#sdkReadSpec()], { client: "sdk" }),
      this.#nexusPid,
    );
    const ratio = sdk.load.rps / client.load.rps;
    return [
      this.#row(
        "sdk-read-client",
        "Secret read, bench load client (next to the SDK row)",
        client,
        c,
      ),
      this.#row(
        "sdk-read",
        "Secret read through the SDK's get",
        sdk,
        c,
        undefined,
        {
          target: { text: "≥ 0.9× load client", pass: ratio >= 0.9 },
          note: `${ratio.toFixed(2)}× the load client's req/s`,
        },
      ),
    ];
  }

  /**
   * 90 % reads, 10 % writes; with `writes`, also writes alone at the same
   * concurrency against the same baseline.
   *
   * @param concurrency concurrent clients
   * @param writes whether to add the write-only row (`write-<clients>`)
   * @returns rows: baseline, mixed, and the writes when asked
   */
  async mixed(concurrency: number, writes = false): Promise<Row[]> {
    const base = await this.#baselineRun(concurrency, true);
    const m = await runLoad(
      this.#config(
        "workload",
        [
          { ...this.#readSpec(), weight: 9 },
          { ...this.#writeSpec(), weight: 1 },
        ],
        { concurrency },
      ),
      this.#nexusPid,
    );
    const read = m.load.byLabel.read;
    const write = m.load.byLabel.write;
    this.notes.push(
      `Mixed 90/10 at ${concurrency} clients: read p50 ${
        read?.p50.toFixed(2)
      } ms, write p50 ${write?.p50.toFixed(2)} ms.`,
    );
    const rows = [
      this.#baselineRow(`baseline-mixed-${concurrency}`, base, concurrency),
      this.#row(
        `mixed-${concurrency}`,
        "Mixed 90 % read / 10 % write",
        m,
        concurrency,
        base,
      ),
    ];
    if (writes) {
      const w = await runLoad(
        this.#config("workload", [this.#writeSpec()], { concurrency }),
        this.#nexusPid,
      );
      rows.push(
        this.#row(
          `write-${concurrency}`,
          "Secret write (durable, group commit)",
          w,
          concurrency,
          base,
          {
            target: {
              text: "≥ 0.45× baseline",
              pass: w.load.rps >= 0.45 * base.load.rps,
            },
          },
        ),
      );
    }
    return rows;
  }

  /**
   * A new TLS connection per request, one client: baseline and nexus read.
   *
   * @returns rows: baseline, nexus read
   */
  async freshConnections(): Promise<Row[]> {
    const base = await this.#baselineRun(1, false);
    const read = await runLoad(
      this.#config("workload", [this.#readSpec()], {
        concurrency: 1,
        keepAlive: false,
      }),
      this.#nexusPid,
    );
    return [
      this.#row(
        "fresh-baseline",
        "New connection per request: baseline",
        base,
        1,
        base,
      ),
      this.#row(
        "fresh-read",
        "New connection per request: secret read",
        read,
        1,
        base,
      ),
    ];
  }

  /**
   * Cipher encrypt of random bytes as the workload at the main concurrency.
   *
   * @param form `json` (base64 in a JSON body) or `stream` (raw bytes)
   * @param size plaintext bytes
   * @returns the measurement
   */
  loadCipher(form: CipherForm, size: number): Promise<Measured> {
    const plaintext = crypto.getRandomValues(new Uint8Array(size));
    const spec: RequestSpec = form === "json"
      ? {
        label: "encrypt",
        route: "/v1/cipher/encrypt",
        body: JSON.stringify({ plaintext: plaintext.toBase64() }),
      }
      : {
        label: "encrypt",
        route: "/v1/cipher/encrypt",
        body: plaintext.toBase64(),
        binary: true,
        contentType: "application/octet-stream",
      };
    return runLoad(this.#config("workload", [spec]), this.#nexusPid);
  }

  /**
   * Cipher encrypt in both wire forms with 64 B plaintexts and the largest
   * the default limit takes (64 KiB of ciphertext: 65,520 B plus the tag).
   *
   * @returns rows: baseline, four cipher rows
   */
  async cipher(): Promise<Row[]> {
    const c = this.#opts.concurrency;
    const base = await this.#baselineRun(c, true);
    const rows: Row[] = [this.#baselineRow("baseline-cipher", base, c)];
    for (const size of CIPHER_SIZES) {
      for (
        const [form, name] of [["json", "JSON"], ["stream", "stream"]] as const
      ) {
        const m = await this.loadCipher(form, size);
        const label = size === 64 ? "64 B" : "64 KiB − 16 B";
        const goal = size > 64 && form === "json"
          ? {
            target: {
              text: "≥ 0.3× baseline",
              pass: m.load.rps >= 0.3 * base.load.rps,
            },
          }
          : {};
        rows.push(
          this.#row(
            `cipher-${form}-${size}`,
            `Cipher encrypt ${label}, ${name}`,
            m,
            c,
            base,
            goal,
          ),
        );
      }
    }
    return rows;
  }

  /**
   * `spike pilot secret get` as a whole process, wall time, and the floor
   * under it: a minimal Deno program making the same request with
   * `node:https` (`pilot_floor.ts`). The two alternate, run by run, so both
   * see the same machine.
   *
   * @param denoDir the Deno cache pilot uses (its HOME is the cluster's)
   * @returns rows: the floor, pilot
   */
  async pilot(denoDir: string | undefined): Promise<Row[]> {
    const env: Record<string, string> = denoDir ? { DENO_DIR: denoDir } : {};
    const floorArgs = [
      "run",
      "--no-prompt",
      `--allow-read=${this.#cluster.svidDir("superuser")}`,
      `--allow-net=${new URL(this.#cluster.nexusUrl).host}`,
      PILOT_FLOOR,
      this.#cluster.svidDir("superuser"),
      `${this.#cluster.nexusUrl}${SECRETS}?action=get`,
      JSON.stringify({ path: "bench/r/1" }),
    ];
    const floorTimes: number[] = [];
    const pilotTimes: number[] = [];
    // The first round fills caches and is not counted.
    for (let i = 0; i <= this.#opts.pilotRuns; i++) {
      let t0 = performance.now();
      const floor = await new Deno.Command(Deno.execPath(), {
        args: floorArgs,
        env: { ...runtimeEnv(), ...env },
        clearEnv: true,
        cwd: this.#cluster.dir,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const floorMs = performance.now() - t0;
      if (floor.code !== 0) {
        throw new ScenarioError(
          `Pilot floor failed (exit ${floor.code}): ${
            new TextDecoder().decode(floor.stderr).slice(0, 300)
          }`,
        );
      }
      t0 = performance.now();
      const res = await this.#cluster.pilot(
        "superuser",
        ["secret", "get", "bench/r/1"],
        { env },
      );
      const pilotMs = performance.now() - t0;
      if (res.code !== 0) {
        throw new ScenarioError(
          `Pilot failed (exit ${res.code}): ${res.stderr.slice(0, 300)}`,
        );
      }
      if (i > 0) {
        floorTimes.push(floorMs);
        pilotTimes.push(pilotMs);
      }
    }
    const floor = processTimes(floorTimes);
    const pilot = processTimes(pilotTimes);
    const over = pilot.p50 - floor.p50;
    return [
      {
        id: "pilot-floor",
        scenario:
          "Floor: minimal Deno `node:https` mTLS request, whole process",
        clients: 1,
        ...floor,
        note: `${floorTimes.length} runs, alternating with pilot`,
      },
      {
        id: "pilot-get",
        scenario: "Pilot CLI `secret get`, whole process",
        clients: 1,
        ...pilot,
        target: { text: "p50 ≤ floor + 15 ms", pass: over <= 15 },
        note: `p50 ${over.toFixed(1)} ms over the floor's`,
      },
    ];
  }

  // A client of nexus on `identity`'s SVID files, closed once `use` settles.
  async #withClient<T>(
    identity: string,
    options: { keepAlive?: boolean; timeoutMs: number },
    use: (client: MtlsClient) => Promise<T>,
  ): Promise<T> {
    const source = await openFileSvidSource(
      this.#cluster.svidDir(identity),
      { watch: false },
    );
    const client = createMtlsClient({
      source,
      authorizeServer: (id) => hasRole(id, "nexus"),
      ...options,
    });
    try {
      return await use(client);
    } finally {
      client.close();
      source.close();
      await source.settled();
    }
  }

  // Polls a secret read with a new connection each time until it succeeds.
  #firstRead(deadlineMs: number): Promise<number> {
    const body = JSON.stringify({ path: "bench/r/1" });
    return this.#withClient(
      "workload",
      { keepAlive: false, timeoutMs: 2_000 },
      async (client) => {
        const deadline = performance.now() + deadlineMs;
        while (performance.now() < deadline) {
          try {
            const res = await client.post(
              `${this.#cluster.nexusUrl}${SECRETS}?action=get`,
              body,
            );
            if (res.status === 200) return performance.now();
          } catch {
            // Not listening yet.
          }
          await new Promise((r) => setTimeout(r, 5));
        }
        throw new ScenarioError(
          `Nexus did not serve within ${deadlineMs} ms`,
        );
      },
    );
  }

  // Starts nexus and measures until the first successful read. The poller
  // starts with the process, not after the port opens, so the time is the
  // whole of what a client waits.
  async #startAndServe(): Promise<{ totalMs: number; listenMs: number }> {
    const t0 = performance.now();
    const served = this.#firstRead(60_000);
    served.catch(() => {});
    await this.#cluster.startNexus();
    const listenMs = performance.now() - t0;
    const totalMs = (await served) - t0;
    return { totalMs, listenMs };
  }

  // A workload that may list some scale secrets: `list` on the reserved
  // list path and on `bench/scale/9.*`, whose literal prefix sorts after
  // nine tenths of the paths: a listing that read the index from its start
  // instead of from the prefix would show.
  async #listerPolicies(): Promise<void> {
    await this.#cluster.issue("lister", LISTER_ID);
    const id = LISTER_ID.replaceAll(".", "\\.");
    for (
      const [name, pathPattern] of [
        ["bench-lister-api", "spike/system/secret"],
        ["bench-lister-scale", "bench/scale/9.*"],
      ]
    ) {
      const res = await this.#cluster.call("superuser", "/v1/acl/policy", {
        name,
        spiffeidPattern: id,
        pathPattern,
        permissions: ["list"],
      });
      if (res.status !== 200) {
        throw new ScenarioError(
          `Creating policy ${name} failed: HTTP ${res.status}`,
        );
      }
    }
  }

  /**
   * 100,000 secrets (×3 versions) and 1,000 policies, or the `--scale`
   * figures: fill, restart to serving, memory at rest, list, read latency.
   *
   * @param small read latency at 100 secrets, for comparison
   * @returns rows
   */
  async scale(small: Measured): Promise<Row[]> {
    const { scale, policies, concurrency } = this.#opts;
    const rows: Row[] = [];
    const policyFill = await runLoad(
      this.#config("superuser", [{
        label: "policy",
        route: "/v1/acl/policy",
        body: JSON.stringify({
          name: "bench-scale-{i}",
          spiffeidPattern: "spiffe://spike\\.ist/bench/none/{i}",
          pathPattern: "bench/none/{i}",
          permissions: ["read"],
        }),
        modulo: policies,
      }], { count: policies, concurrency: 32 }),
      this.#nexusPid,
    );
    const fill = await runLoad(
      this.#config("superuser", [this.#writeSpec("bench/scale", scale)], {
        count: scale * 3,
        concurrency: 64,
      }),
      this.#nexusPid,
    );
    rows.push(
      this.#row(
        "scale-fill",
        `Scale fill: ${scale.toLocaleString("en-US")} secrets × 3 versions`,
        fill,
        64,
        undefined,
        {
          note: `${policyFill.load.ok} policies in ${
            policyFill.load.elapsedMs.toFixed(0)
          } ms`,
        },
      ),
    );

    await this.#cluster.stopNexus("SIGTERM");
    const restart = await this.#startAndServe();
    rows.push({
      id: "scale-restart",
      scenario: "Restart to unlocked and serving (5 keepers, t=3)",
      p50: restart.totalMs,
      target: { text: "≤ 1000 ms", pass: restart.totalMs <= 1000 },
      note: `port open after ${restart.listenMs.toFixed(0)} ms`,
    });
    this.notes.push(
      `Restart at scale: ${
        restart.totalMs.toFixed(0)
      } ms from spawning nexus to the first successful read (process start and module load ${
        restart.listenMs.toFixed(0)
      } ms of it, then root key from 3 of 5 keepers, ${policies} policies decrypted and compiled; secrets are decrypted only when read).`,
    );

    await new Promise((r) => setTimeout(r, 1_000));
    const rest = await sample(this.#nexusPid);
    rows.push({
      id: "scale-rss-rest",
      scenario: "RSS at rest after restart",
      rssMb: rest.rssKb / 1024,
      target: {
        text: "≤ 150 MB",
        pass: rest.rssKb / 1024 <= 150,
      },
    });

    // The first keyset page, as pilot and the SDK read it, warm, over a
    // measured window like the other loads; then as a workload whose list
    // policy has a literal prefix, so only that range of the index is read;
    // the whole list in one answer (no page fields, upstream's form) last.
    const firstPage: RequestSpec = {
      label: "list",
      route: `${SECRETS}?action=list`,
      body: JSON.stringify({ limit: 100 }),
    };
    const list = await runLoad(
      this.#config("superuser", [firstPage], { concurrency: 1 }),
      this.#nexusPid,
    );
    await this.#listerPolicies();
    const workloadList = await runLoad(
      this.#config("lister", [firstPage], { concurrency: 1 }),
      this.#nexusPid,
    );
    const listAll = await runLoad(
      this.#config("superuser", [{
        label: "list-all",
        route: `${SECRETS}?action=list`,
        body: "{}",
      }], { count: this.#opts.quick ? 3 : 5, concurrency: 1 }),
      this.#nexusPid,
    );
    const pageTarget = (m: Measured) => ({
      target: {
        text: "≤ 1000 µs server CPU",
        pass: m.server.cpuUsPerRequest <= 1000,
      },
    });
    rows.push(
      this.#row(
        "scale-list",
        "Secret list as superuser, first page of 100",
        list,
        1,
        undefined,
        pageTarget(list),
      ),
      this.#row(
        "scale-list-workload",
        "Secret list as a workload (policy bench/scale/9.*), first page of 100",
        workloadList,
        1,
        undefined,
        pageTarget(workloadList),
      ),
      this.#row(
        "scale-list-all",
        "Secret list as superuser, every path in one answer",
        listAll,
        1,
      ),
    );

    const large = await runLoad(
      this.#config("workload", [this.#readSpec("bench/scale", scale)], {
        concurrency: 1,
      }),
      this.#nexusPid,
    );
    const growth = large.load.latency.p50 / small.load.latency.p50;
    rows.push(
      this.#row(
        "read-small-c1",
        "Secret read latency at 100 secrets",
        small,
        1,
      ),
      this.#row(
        "read-scale-c1",
        "Secret read latency at scale",
        large,
        1,
        undefined,
        {
          target: {
            text: "p50 ≤ 1.25× at 100",
            pass: growth <= 1.25,
          },
          note: `p50 ${growth.toFixed(2)}× the 100-secret p50`,
        },
      ),
    );
    const base = await this.#baselineRun(concurrency, true);
    const busy = await runLoad(
      this.#config("workload", [this.#readSpec("bench/scale", scale)]),
      this.#nexusPid,
    );
    rows.push(
      this.#baselineRow("baseline-scale", base, concurrency),
      this.#row("read-scale", "Secret read at scale", busy, concurrency, base),
      await this.#fullCheck(),
    );
    return rows;
  }

  // `spike pilot operator check`: every record opened, the digest
  // recomputed, timed as one call.
  #fullCheck(): Promise<Row> {
    return this.#withClient(
      "superuser",
      { keepAlive: false, timeoutMs: 600_000 },
      async (client) => {
        const t0 = performance.now();
        const res = await client.post(
          `${this.#cluster.nexusUrl}/v1/operator/check`,
          "{}",
        );
        const ms = performance.now() - t0;
        const report = JSON.parse(new TextDecoder().decode(res.body));
        if (res.status !== 200 || report.problemCount !== 0) {
          throw new ScenarioError(
            `operator check answered ${res.status}: ${report.problemCount} problems`,
          );
        }
        return {
          id: "scale-check",
          scenario: "Full check of every row and the digest (operator check)",
          p50: ms,
          note:
            `${report.secrets} secrets, ${report.versions} older versions, ${report.policies} policies`,
        };
      },
    );
  }

  /**
   * `kill -9` of nexus, then the time until a new nexus serves a read.
   *
   * @returns its row
   */
  async recovery(): Promise<Row> {
    const t0 = performance.now();
    await this.#cluster.stopNexus("SIGKILL");
    const killMs = performance.now() - t0;
    const restart = await this.#startAndServe();
    const total = killMs + restart.totalMs;
    return {
      id: "recovery",
      scenario: "Recovery: kill -9 to first read on the new nexus",
      p50: total,
      note: `port open after ${(killMs + restart.listenMs).toFixed(0)} ms`,
    };
  }

  /**
   * The key lifecycle on the scale store: how long `operator rotate`,
   * `operator rekey` (same split, 5 keepers) and a streamed backup take
   * there, and read and write just before and just after them (records of
   * the older term are opened as before; new ones sealed with the new
   * term), each next to a baseline taken with it.
   *
   * @returns rows
   */
  async lifecycle(): Promise<Row[]> {
    const { scale, concurrency: c } = this.#opts;
    const phase = async () => {
      const base = await this.#baselineRun(c, true);
      const read = await this.loadRead();
      const write = await this.loadWrite();
      return { base, read, write };
    };
    const before = await phase();
    const url = (route: string) => `${this.#cluster.nexusUrl}${route}`;
    let bytes = 0;
    const { rotateMs, rekeyMs, backupMs } = await this.#withClient(
      "superuser",
      { timeoutMs: 600_000 },
      async (client) => {
        const timed = async (
          route: string,
          sink?: (c: Uint8Array) => void,
        ) => {
          const t0 = performance.now();
          const res = await client.post(
            url(route),
            "{}",
            sink ? { sink } : {},
          );
          if (res.status !== 200) {
            throw new ScenarioError(`${route} answered HTTP ${res.status}`);
          }
          return performance.now() - t0;
        };
        // A warm connection: the rows time the operation, not a handshake.
        await timed("/v1/operator/status");
        return {
          rotateMs: await timed("/v1/operator/rotate"),
          rekeyMs: await timed("/v1/operator/rekey"),
          backupMs: await timed("/v1/operator/backup", (chunk) => {
            bytes += chunk.length;
          }),
        };
      },
    );
    const after = await phase();
    const size = `${scale.toLocaleString("en-US")} secrets × 3 versions`;
    // Each side against its own baseline: the machine's ceiling moves.
    const versus = (kind: "read" | "write") => {
      const pre = before[kind].load.rps / before.base.load.rps;
      const post = after[kind].load.rps / after.base.load.rps;
      const ratio = post / pre;
      return {
        target: {
          // One-sided: a rotation must not slow these down; a faster
          // run after it is the machine's noise, not a regression.
          text: "≥ 0.9× before the rotation (each over its baseline)",
          pass: ratio >= 0.9,
        },
        note: `${
          ratio.toFixed(2)
        }× the ${kind} before (each over its baseline); server CPU ${
          Math.round(before[kind].server.cpuUsPerRequest)
        } → ${Math.round(after[kind].server.cpuUsPerRequest)} µs/req`,
      };
    };
    return [
      {
        id: "rotate-scale",
        scenario: `operator rotate at ${size}`,
        p50: rotateMs,
        note: "a new data-key term: one keyring write, no record touched",
      },
      {
        id: "rekey-scale",
        scenario: `operator rekey at ${size} (5 keepers, t=3)`,
        p50: rekeyMs,
        note:
          "new root key: keyring re-wrapped, two-phase push to 5 keepers, no record re-encrypted",
      },
      {
        id: "backup-scale",
        scenario: `operator backup at ${size}, streamed snapshot`,
        p50: backupMs,
        note: `${(bytes / 1024 / 1024).toFixed(1)} MiB, ${
          (bytes / 1024 / 1024 / (backupMs / 1000)).toFixed(0)
        } MiB/s`,
      },
      this.#baselineRow(`baseline-rotated-${c}`, after.base, c),
      this.#row(
        "read-rotated",
        "Secret read after rotate and rekey (older term)",
        after.read,
        c,
        after.base,
        versus("read"),
      ),
      this.#row(
        "write-rotated",
        "Secret write after rotate and rekey (new term)",
        after.write,
        c,
        after.base,
        versus("write"),
      ),
    ];
  }
}
