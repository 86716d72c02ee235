// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * What the reliability suite shares: its size (`SPIKE_TEST_SIZE=quick`, the
 * default and what CI runs, or `full`), a seeded PRNG whose seed is printed
 * so a failing run can be replayed (`SPIKE_TEST_SEED`), a long-lived mTLS
 * client of nexus, bounded polling, process memory, the audit log, and
 * probes for what the machine permits (mounts, network namespaces).
 *
 * @module
 */
import https from "node:https";
import net from "node:net";
import type { Socket } from "node:net";
import tls from "node:tls";
import type { Cluster } from "../scripts/cluster.ts";
export { type Reply, SpikeClient } from "../scripts/spike_client.ts";

/** How much work the suite does. */
export type TestSize = "quick" | "full";

function readSize(): TestSize {
  const raw = Deno.env.get("SPIKE_TEST_SIZE")?.trim().toLowerCase() ?? "";
  if (raw === "" || raw === "quick") return "quick";
  if (raw === "full") return "full";
  throw new Error(`SPIKE_TEST_SIZE must be quick or full, got "${raw}"`);
}

/** The size of this run, from `SPIKE_TEST_SIZE` (default quick). */
export const TEST_SIZE: TestSize = readSize();

/**
 * Picks the value for this run's size.
 *
 * @param quick the value for quick runs (CI)
 * @param full the value for full runs
 * @returns one of them
 */
export function sized<T>(quick: T, full: T): T {
  return TEST_SIZE === "full" ? full : quick;
}

/**
 * The seed of a randomized test: `SPIKE_TEST_SEED` when set, else random.
 * Printed, so that a failure can be replayed with the same seed.
 *
 * @param label the test's name, printed with the seed
 * @returns the seed
 */
export function testSeed(label: string): number {
  const raw = Deno.env.get("SPIKE_TEST_SEED");
  const seed = raw !== undefined && raw.trim() !== ""
    ? Number(raw) >>> 0
    : crypto.getRandomValues(new Uint32Array(1))[0]!;
  console.log(`${label}: seed ${seed} (size ${TEST_SIZE})`);
  return seed;
}

/** A small seeded PRNG (mulberry32): reproducible test randomness. */
export class Prng {
  #state: number;

  /** @param seed any 32-bit number */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A number in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /**
   * A whole number in [min, max].
   *
   * @param min the lowest value
   * @param max the highest value
   */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /**
   * True with probability `p`.
   *
   * @param p the probability
   */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /**
   * One of `items`.
   *
   * @param items a non-empty list
   */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /**
   * Random bytes.
   *
   * @param n how many
   */
  bytes(n: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }

  /**
   * A random string.
   *
   * @param n its length
   * @param alphabet the characters to draw from
   */
  string(
    n: number,
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789",
  ): string {
    let s = "";
    for (let i = 0; i < n; i++) s += this.pick([...alphabet]);
    return s;
  }
}

/**
 * Polls `check` until it holds.
 *
 * @param what what is awaited, for the error
 * @param check the condition; a throw counts as not yet
 * @param timeoutMs how long to wait
 * @param intervalMs the pause between checks
 * @throws {Error} when the time is up
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // Not yet.
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * Waits until nexus reports that every keeper holds its shard (asking the
 * keepers live).
 *
 * @param cluster the running, unlocked cluster
 */
export async function waitForKeeperShards(cluster: Cluster): Promise<void> {
  await waitFor("every keeper to hold its shard", async () => {
    const status = await cluster.call("superuser", "/v1/operator/status", {
      probe: true,
    });
    return (status.body?.keepers as { holdsShard: boolean }[])
      .every((k) => k.holdsShard === true);
  });
}

/**
 * Waits.
 *
 * @param ms milliseconds
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * The resident memory of a process, from /proc. Deno asks for --allow-all
 * to read another process's /proc files, so `cat` reads it.
 *
 * @param pid the process id
 * @returns VmRSS in KiB
 */
export async function residentKib(pid: number): Promise<number> {
  const out = await new Deno.Command("cat", {
    args: [`/proc/${pid}/status`],
    stdout: "piped",
    stderr: "null",
  }).output();
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(
    new TextDecoder().decode(out.stdout),
  );
  if (!out.success || !match) throw new Error(`No VmRSS for process ${pid}`);
  return Number(match[1]);
}

/** One line of the nexus audit log. */
export interface AuditEntry {
  /** The trail id. */
  readonly trail: string;
  /** The caller's SPIFFE ID or remote address. */
  readonly caller: string | null;
  /** The route path ("" for TLS refusals). */
  readonly route: string;
  /** The action ("handshake" for TLS refusals). */
  readonly action: string;
  /** The secret path or policy name. */
  readonly resource: string | null;
  /** success, denied, refused or error. */
  readonly outcome: string;
  /** The HTTP status (0 for TLS refusals). */
  readonly status: number;
  /** The error code or refusal reason. */
  readonly err: string | null;
}

/**
 * Reads every record of an audit log file.
 *
 * @param file the SPIKE_NEXUS_AUDIT_LOG file
 * @returns the records, oldest first
 */
export async function readAudit(file: string): Promise<AuditEntry[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return text.split("\n").filter((l) => l.trim() !== "").map((l) =>
    JSON.parse(l).audit as AuditEntry
  );
}

/** The outcome of a command. */
export interface CommandResult {
  /** Exit code. */
  readonly code: number;
  /** Standard output. */
  readonly stdout: string;
  /** Standard error. */
  readonly stderr: string;
}

/**
 * Runs a command to its end.
 *
 * @param cmd the program
 * @param args its arguments
 * @returns exit code and output
 */
export async function runCommand(
  cmd: string,
  args: string[],
): Promise<CommandResult> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
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
  } catch (e) {
    return { code: 127, stdout: "", stderr: (e as Error).message };
  }
}

/**
 * Runs a command and fails loudly when it fails.
 *
 * @param cmd the program
 * @param args its arguments
 * @returns standard output
 * @throws {Error} with the command's stderr
 */
export async function mustRun(cmd: string, args: string[]): Promise<string> {
  const res = await runCommand(cmd, args);
  if (res.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${res.stderr.trim()}`);
  }
  return res.stdout;
}

/**
 * Whether this machine lets the tests mount a tmpfs (root in a namespace
 * that permits mounts). Probed once with a real mount.
 *
 * @returns true when `mount -t tmpfs` works here
 */
export async function canMountTmpfs(): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  const dir = await Deno.makeTempDir({ prefix: "spike-mount-probe-" });
  try {
    const mounted = await runCommand("mount", [
      "-t",
      "tmpfs",
      "-o",
      "size=64k",
      "tmpfs",
      dir,
    ]);
    if (mounted.code !== 0) return false;
    await runCommand("umount", [dir]);
    return true;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Whether this machine lets the tests create network namespaces.
 *
 * @returns true when `ip netns add` works here
 */
export async function canUseNetns(): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  const name = `spike-probe-${Deno.pid}`;
  const added = await runCommand("ip", ["netns", "add", name]);
  if (added.code !== 0) return false;
  await runCommand("ip", ["netns", "del", name]);
  return true;
}

/** The most body bytes one "huge" answer sends. */
const HUGE_BODY_CAP = 512 * 1024 * 1024;

/** How a {@linkcode FakeServer} treats the connections it accepts. */
export type FakeBehavior =
  /** TLS handshake, then reads and never answers. */
  | "silent"
  /** TLS handshake, then answers one header byte every 300 ms, forever. */
  | "slow"
  /** TLS handshake, then answers random bytes or a malformed shard. */
  | "garbage"
  /** Accepts TCP and never speaks TLS. */
  | "blackhole"
  /** TLS handshake, records what the client sends, answers 200 `{}`. */
  | "record"
  /**
   * TLS handshake, then answers a body of up to 512 MiB of zeros, as fast
   * as the client reads: odd connections declare 4 GiB, even ones declare
   * no length and end the body by closing.
   */
  | "huge";

/** One connection a fake server accepted. */
export interface FakeConnection {
  /** When the TCP connection was accepted (Date.now()). */
  readonly openedAt: number;
  /** When it closed, if it did. */
  closedAt: number | undefined;
}

/**
 * A misbehaving server on 127.0.0.1 with a real SVID from an SVID
 * directory: a keeper that hangs, trickles or talks garbage, or an
 * impostor that records whether a client sent it anything.
 */
export class FakeServer {
  /** Every accepted TCP connection, in order. */
  readonly connections: FakeConnection[] = [];
  /** Application bytes received over TLS, over every connection. */
  received = 0;
  /** Body bytes handed to TLS by the "huge" behavior, over every connection. */
  sent = 0;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #timers = new Set<ReturnType<typeof setInterval>>();
  #secured = 0;

  private constructor(server: net.Server) {
    this.#server = server;
  }

  /**
   * Starts a fake server.
   *
   * @param svidDir the SVID directory it presents (ignored for blackhole)
   * @param port the port on 127.0.0.1
   * @param behavior what it does with connections
   * @returns the listening server
   */
  static async start(
    svidDir: string,
    port: number,
    behavior: FakeBehavior,
  ): Promise<FakeServer> {
    let server: net.Server;
    if (behavior === "blackhole") {
      server = net.createServer();
    } else {
      const [cert, key, ca] = await Promise.all(
        ["svid.pem", "svid_key.pem", "svid_bundle.pem"].map((f) =>
          Deno.readTextFile(`${svidDir}/${f}`)
        ),
      );
      server = tls.createServer({
        cert,
        key,
        ca,
        requestCert: true,
        rejectUnauthorized: false,
      });
      server.on("tlsClientError", () => {});
      server.on("secureConnection", (socket: net.Socket) => {
        fake.#serve(socket, behavior);
      });
    }
    const fake = new FakeServer(server);
    server.on("connection", (socket: net.Socket) => {
      fake.#track(socket);
      // Read (and drop) what arrives, or the client's FIN goes unseen.
      if (behavior === "blackhole") socket.on("data", () => {});
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    return fake;
  }

  #track(socket: net.Socket): void {
    const conn: FakeConnection = { openedAt: Date.now(), closedAt: undefined };
    this.connections.push(conn);
    this.#sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => {
      conn.closedAt = Date.now();
      this.#sockets.delete(socket);
    });
  }

  #serve(socket: net.Socket, behavior: FakeBehavior): void {
    const index = ++this.#secured;
    this.#sockets.add(socket);
    let timer: ReturnType<typeof setInterval> | undefined;
    let first = true;
    socket.on("error", () => {});
    socket.on("close", () => {
      this.#sockets.delete(socket);
      if (timer !== undefined) {
        clearInterval(timer);
        this.#timers.delete(timer);
      }
    });
    socket.on("data", (chunk: Uint8Array) => {
      this.received += chunk.byteLength;
      if (!first) return;
      first = false;
      if (behavior === "slow") {
        const head = new TextEncoder().encode(
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " +
            "z".repeat(100_000),
        );
        let at = 0;
        timer = setInterval(() => {
          if (at < head.length) socket.write(head.subarray(at, ++at));
        }, 300);
        this.#timers.add(timer);
      } else if (behavior === "garbage") {
        if (index % 2 === 1) {
          socket.end(crypto.getRandomValues(new Uint8Array(512)));
        } else {
          const body = JSON.stringify({ shard: [1, 2, 3], index: 1 });
          socket.end(
            `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n` +
              `Content-Length: ${body.length}\r\n\r\n${body}`,
          );
        }
      } else if (behavior === "huge") {
        socket.write(
          index % 2 === 1
            ? "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" +
              `Content-Length: ${2 ** 32}\r\n\r\n`
            : "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" +
              "Connection: close\r\n\r\n",
        );
        const zeros = new Uint8Array(64 * 1024);
        let sent = 0;
        const pump = () => {
          while (sent < HUGE_BODY_CAP && !socket.destroyed) {
            sent += zeros.length;
            this.sent += zeros.length;
            if (!socket.write(zeros)) {
              socket.once("drain", pump);
              return;
            }
          }
          socket.end();
        };
        pump();
      } else if (behavior === "record") {
        socket.end(
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" +
            "Content-Length: 2\r\nConnection: close\r\n\r\n{}",
        );
      }
    });
  }

  /** Drops every connection and stops listening. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers.clear();
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** What a raw mTLS attempt ended with. */
export type Attempt =
  | { kind: "answer"; status: number; body: Record<string, unknown> }
  | { kind: "refused"; localPort: number; error: string };

/** Whether curl is on this machine. */
export const CURL: boolean = (() => {
  try {
    return new Deno.Command("curl", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
})();

/**
 * Posts JSON presenting the SVID of `dir` (or no certificate) without
 * checking the server: only how the server treats the client matters.
 * curl (OpenSSL) is used where present, because it presents any
 * certificate it is given, a CA included, where Deno's own TLS client
 * gives up before the server can judge.
 */
export async function attempt(
  url: string,
  dir: string | undefined,
  body: unknown = {},
): Promise<Attempt> {
  if (!CURL) return await nodeAttempt(url, dir, body);
  const out = await new Deno.Command("curl", {
    args: [
      "-sk",
      "--max-time",
      "10",
      "-X",
      "POST",
      "-H",
      "content-type: application/json",
      "--data-binary",
      JSON.stringify(body),
      "-w",
      "\n%{http_code} %{local_port}",
      ...(dir === undefined
        ? []
        : ["--cert", `${dir}/svid.pem`, "--key", `${dir}/svid_key.pem`]),
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const cut = text.lastIndexOf("\n");
  const [status, port] = text.slice(cut + 1).split(" ").map(Number);
  if (out.code !== 0 || status === 0) {
    return {
      kind: "refused",
      localPort: port ?? 0,
      error: `curl exit ${out.code}`,
    };
  }
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text.slice(0, cut));
  } catch {
    // Not JSON.
  }
  return { kind: "answer", status: status!, body: parsed };
}

/** {@linkcode attempt} with `node:https`, where curl is missing. */
async function nodeAttempt(
  url: string,
  dir: string | undefined,
  body: unknown,
): Promise<Attempt> {
  const identity = dir === undefined ? undefined : await pemsOf(dir);
  return await new Promise((resolve) => {
    let localPort = 0;
    const payload = JSON.stringify(body);
    const req = https.request(url, {
      method: "POST",
      ...(identity ?? {}),
      rejectUnauthorized: false,
      agent: false,
      headers: {
        "content-type": "application/json",
        "content-length": String(payload.length),
      },
    }, (res) => {
      const chunks: Uint8Array[] = [];
      res.on("data", (c: Uint8Array) => chunks.push(c));
      res.on("end", () => {
        const text = new TextDecoder().decode(
          new Uint8Array(chunks.flatMap((c) => [...c])),
        );
        let parsed: Record<string, unknown> = {};
        try {
          parsed = JSON.parse(text);
        } catch {
          // Not JSON.
        }
        resolve({ kind: "answer", status: res.statusCode ?? 0, body: parsed });
      });
      res.on(
        "error",
        (e) => resolve({ kind: "refused", localPort, error: e.message }),
      );
    });
    req.on("socket", (socket: Socket) => {
      socket.once("connect", () => {
        localPort = socket.localPort ?? 0;
      });
    });
    req.on(
      "error",
      (e) => resolve({ kind: "refused", localPort, error: e.message }),
    );
    req.end(payload);
  });
}

async function pemsOf(dir: string): Promise<{ cert: string; key: string }> {
  return {
    cert: await Deno.readTextFile(`${dir}/svid.pem`),
    key: await Deno.readTextFile(`${dir}/svid_key.pem`),
  };
}
