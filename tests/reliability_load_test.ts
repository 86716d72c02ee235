// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Load against a real nexus: 256 concurrent connections for a sustained
// period, some of them slowloris clients that trickle their headers or
// their body and never finish. Nexus keeps serving the others, closes each
// slow connection once its header or request timeout passes, and its
// memory stays bounded.
import assert from "node:assert/strict";
import tls from "node:tls";
import { Cluster } from "../scripts/cluster.ts";
import {
  residentKib,
  sized,
  sleep,
  SpikeClient,
  waitFor,
} from "./reliability_support.ts";

const CONNECTIONS = 256;
const SLOW_HEADERS = 48;
const SLOW_BODIES = 16;
const WORKERS = CONNECTIONS - SLOW_HEADERS - SLOW_BODIES;
const HEADERS_TIMEOUT_MS = 2_000;
const REQUEST_TIMEOUT_MS = 4_000;
const MEMORY_BOUND_KIB = 200 * 1024;

/** A client that opens TLS and sends its request a byte at a time. */
class SlowClient {
  readonly openedAt = Date.now();
  closedAt: number | undefined;
  answer = "";
  /** Whether the headers are complete and the body trickles. */
  readonly sendsBody: boolean;
  readonly #socket: tls.TLSSocket;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    port: number,
    identity: { cert: string; key: string },
    head: string,
    trickle: string,
  ) {
    this.sendsBody = head.endsWith("\r\n\r\n");
    this.#socket = tls.connect({
      host: "127.0.0.1",
      port,
      ...identity,
      rejectUnauthorized: false,
    });
    this.#socket.on("error", () => {});
    this.#socket.on("data", (chunk: Uint8Array) => {
      this.answer += new TextDecoder().decode(chunk);
    });
    this.#socket.on("close", () => {
      this.closedAt ??= Date.now();
      clearInterval(this.#timer);
    });
    let at = 0;
    this.#socket.once("secureConnect", () => {
      this.#socket.write(head);
      if (this.closedAt !== undefined) return;
      this.#timer = setInterval(() => {
        if (this.#socket.writable && this.closedAt === undefined) {
          this.#socket.write(trickle[at++ % trickle.length]!);
        }
      }, 250);
    });
  }

  /** Stops trickling and drops the connection. */
  close(): Promise<void> {
    clearInterval(this.#timer);
    if (this.closedAt !== undefined) return Promise.resolve();
    return new Promise((resolve) => {
      this.#socket.once("close", () => resolve());
      this.#socket.destroy();
    });
  }
}

Deno.test("256 connections with slowloris clients among them: nexus keeps serving, closes the slow ones, memory stays bounded", async () => {
  const durationMs = sized(5_000, 30_000);
  const cluster = await Cluster.create({
    backend: "memory",
    keepers: 1,
    logLevel: "WARN",
    nexusEnv: {
      SPIKE_HTTP_SERVER_READ_HEADER_TIMEOUT: `${HEADERS_TIMEOUT_MS}ms`,
      SPIKE_HTTP_SERVER_REQUEST_TIMEOUT: `${REQUEST_TIMEOUT_MS}ms`,
    },
  });
  let client: SpikeClient | undefined;
  const slow: SlowClient[] = [];
  try {
    await cluster.startNexus();
    await cluster.waitUnlocked();
    const pid = cluster.nexus!.pid;
    const c = await SpikeClient.open(
      cluster.svidDir("superuser"),
      cluster.nexusUrl,
      { timeoutMs: 30_000 },
    );
    client = c;
    const put = await c.post("/v1/store/secrets", {
      path: "load/secret",
      values: { v: "x".repeat(512) },
    });
    assert.equal(put.status, 200);
    for (let i = 0; i < 20; i++) {
      await c.post("/v1/store/secrets?action=get", { path: "load/secret" });
    }
    const rssBefore = await residentKib(pid);

    const identity = {
      cert: await Deno.readTextFile(`${cluster.svidDir("superuser")}/svid.pem`),
      key: await Deno.readTextFile(
        `${cluster.svidDir("superuser")}/svid_key.pem`,
      ),
    };
    const started = Date.now();
    const body = JSON.stringify({ path: "load/secret" }).padEnd(1000, " ");
    const slowHeader = () =>
      new SlowClient(
        cluster.nexusPort,
        identity,
        "POST /v1/store/secrets?action=get HTTP/1.1\r\nHost: nexus\r\n",
        "X-Slow: " + "a".repeat(64),
      );
    const slowBody = () =>
      new SlowClient(
        cluster.nexusPort,
        identity,
        "POST /v1/store/secrets?action=get HTTP/1.1\r\nHost: nexus\r\n" +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
        body,
      );
    // The attack is sustained: each slow connection nexus drops is replaced
    // at once, so SLOW_HEADERS + SLOW_BODIES of them are open all along.
    const open: [SlowClient, () => SlowClient][] = [];
    for (let i = 0; i < SLOW_HEADERS; i++) {
      open.push([slowHeader(), slowHeader]);
    }
    for (let i = 0; i < SLOW_BODIES; i++) open.push([slowBody(), slowBody]);
    slow.push(...open.map(([s]) => s));
    const attack = (async () => {
      while (Date.now() < started + durationMs) {
        for (const entry of open) {
          if (entry[0].closedAt !== undefined) {
            entry[0] = entry[1]();
            slow.push(entry[0]);
          }
        }
        await sleep(100);
      }
    })();

    let ok = 0;
    let failed = 0;
    let peak = rssBefore;
    const served = new Array<number>(WORKERS).fill(0);
    const deadline = started + durationMs;
    const sampling = (async () => {
      while (Date.now() < deadline) {
        try {
          peak = Math.max(peak, await residentKib(pid));
        } catch {
          // The process is gone; the running check below reports it.
        }
        await sleep(250);
      }
    })();
    try {
      await Promise.all(
        Array.from({ length: WORKERS }, async (_, w) => {
          while (Date.now() < deadline) {
            try {
              const res = await c.post("/v1/store/secrets?action=get", {
                path: "load/secret",
              });
              if (res.status === 200) {
                ok++;
                served[w]!++;
              } else failed++;
            } catch {
              failed++;
            }
          }
        }),
      );
    } finally {
      await sampling;
      await attack;
    }
    assert.ok(cluster.nexus?.running, "nexus died under load");
    assert.equal(failed, 0, `${failed} requests failed under load`);
    assert.ok(
      served.every((n) => n > 0),
      "a connection was starved while slow clients held theirs",
    );

    // Every slow connection is closed by nexus, none by its client (they
    // trickle until closed), and none before its timeout. How soon after
    // the timeout is a measurement, printed below: on shared cores a timed
    // bound fails for reasons that are not nexus's.
    await waitFor(
      "nexus to close every slow connection",
      () => slow.every((s) => s.closedAt !== undefined),
      10 * REQUEST_TIMEOUT_MS,
    );
    const lifetimes = (kind: (s: SlowClient) => boolean) =>
      slow.filter(kind).map((s) => s.closedAt! - s.openedAt);
    const headerLives = lifetimes((s) => !s.sendsBody);
    const bodyLives = lifetimes((s) => s.sendsBody);
    assert.ok(
      Math.min(...headerLives) >= HEADERS_TIMEOUT_MS,
      `a slow-header connection was closed before the header timeout`,
    );
    assert.ok(
      Math.min(...bodyLives) >= HEADERS_TIMEOUT_MS,
      `a slow-body connection was closed before the header timeout`,
    );
    const headerLife = Math.max(...headerLives);
    const bodyLife = Math.max(...bodyLives);
    // No slow request reached a route: they got at most a timeout answer.
    for (const s of slow) assert.ok(!s.answer.includes('"data"'), s.answer);

    await sleep(500);
    const rssAfter = await residentKib(pid);
    assert.ok(
      peak - rssBefore < MEMORY_BOUND_KIB,
      `memory grew from ${rssBefore} KiB to a peak of ${peak} KiB`,
    );
    console.log(
      `${CONNECTIONS} connections for ${durationMs} ms: ${ok} requests served, ` +
        `${slow.length} slow clients closed after at most ${headerLife} ms ` +
        `(headers) and ${bodyLife} ms (body); RSS ${rssBefore} -> peak ${peak} ` +
        `-> ${rssAfter} KiB`,
    );
  } finally {
    for (const s of slow) await s.close();
    await client?.close();
    await cluster.close();
  }
});
