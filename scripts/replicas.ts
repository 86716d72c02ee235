// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Several nexus replicas of one cluster on one PostgreSQL store: each a
 * real process with the launcher's scoped flags, its own port, the
 * cluster's keepers and nexus identity. The end-to-end tests, `deno task
 * up --postgres` and the benchmark use it.
 *
 * @module
 */
import { type Cluster, type SpikeProcess, waitForPort } from "./cluster.ts";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A reply of nexus. */
export interface NexusReply {
  /** HTTP status. */
  readonly status: number;
  /** The parsed JSON body. */
  readonly body: Record<string, unknown> | undefined;
}

/** N nexus replicas sharing one database. */
export class ReplicaSet {
  /** The cluster (CA, keepers, identities). */
  readonly cluster: Cluster;
  /** Replica ports; replica i (1-based) at index i-1. */
  readonly ports: number[];
  /** Running replicas by index. */
  readonly running = new Map<number, SpikeProcess>();
  readonly #databaseUrl: string;
  readonly #env: Record<string, string>;

  /**
   * Binds replicas to a cluster; starts nothing.
   *
   * @param cluster a created cluster (keepers may run already)
   * @param count how many replicas
   * @param databaseUrl `SPIKE_NEXUS_DATABASE_URL`
   * @param env extra environment for every replica
   */
  constructor(
    cluster: Cluster,
    count: number,
    databaseUrl: string,
    env: Record<string, string> = {},
  ) {
    this.cluster = cluster;
    this.ports = Array.from({ length: count }, () => freePort());
    this.#databaseUrl = databaseUrl;
    this.#env = env;
  }

  /**
   * The URL of replica `i`.
   *
   * @param i 1-based index
   * @returns its base URL
   */
  url(i: number): string {
    return `https://127.0.0.1:${this.ports[i - 1]}`;
  }

  /**
   * The environment replica `i` runs with.
   *
   * @param i 1-based index
   * @returns the environment
   */
  env(i: number): Record<string, string> {
    const base = this.cluster.nexusEnv();
    delete base.SPIKE_NEXUS_DATA_DIR;
    return {
      ...base,
      SPIKE_NEXUS_TLS_PORT: `127.0.0.1:${this.ports[i - 1]}`,
      SPIKE_NEXUS_BACKEND_STORE: "postgres",
      SPIKE_NEXUS_DATABASE_URL: this.#databaseUrl,
      SPIKE_NEXUS_REPLICA_NAME: `replica-${i}`,
      ...this.#env,
    };
  }

  /**
   * Starts replica `i` and waits until it listens (it may still be locked).
   *
   * @param i 1-based index
   * @returns the process
   */
  async start(i: number): Promise<SpikeProcess> {
    const proc = this.cluster.spawn("nexus", this.env(i));
    this.running.set(i, proc);
    await waitForPort(this.ports[i - 1]!, 30_000, () => proc.running);
    return proc;
  }

  /** Starts every replica at once and waits until each listens. */
  async startAll(): Promise<void> {
    await Promise.all(this.ports.map((_, i) => this.start(i + 1)));
  }

  /**
   * Stops replica `i` (SIGKILL by default: a crash).
   *
   * @param i 1-based index
   * @param signal the signal
   */
  async stop(i: number, signal: Deno.Signal = "SIGKILL"): Promise<void> {
    await this.running.get(i)?.stop(signal);
    this.running.delete(i);
  }

  /**
   * Posts to replica `i` as an identity.
   *
   * @param i 1-based index
   * @param identity the SVID directory name
   * @param route path and query
   * @param body the JSON body
   * @returns status and body
   */
  call(
    i: number,
    identity: string,
    route: string,
    body: unknown = {},
  ): Promise<NexusReply> {
    return this.cluster.request(
      identity,
      `${this.url(i)}${route}`,
      body,
      "nexus",
    );
  }

  /**
   * Waits until replica `i` reports itself unlocked.
   *
   * @param i 1-based index
   * @param timeoutMs how long to wait
   */
  async waitUnlocked(i: number, timeoutMs = 60_000): Promise<void> {
    await this.waitState(i, "unlocked", timeoutMs);
  }

  /**
   * Waits until replica `i` reports `state` (`held`: it has the key but
   * serves no data, e.g. a store restored from a backup).
   *
   * @param i 1-based index
   * @param state the state to wait for
   * @param timeoutMs how long to wait
   */
  async waitState(
    i: number,
    state: "unlocked" | "held",
    timeoutMs = 60_000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        const res = await this.call(i, "superuser", "/v1/operator/status");
        if (res.status === 200 && res.body?.state === state) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      `Replica ${i} did not become ${state} within ${timeoutMs} ms`,
    );
  }

  /** Stops every replica. */
  async close(): Promise<void> {
    for (const i of [...this.running.keys()]) await this.stop(i);
  }
}
