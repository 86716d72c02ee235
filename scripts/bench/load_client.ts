// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The benchmark's load generator, run as its own process so its CPU use is
 * not the server's. Reads a {@linkcode LoadConfig} as JSON on stdin, sends
 * requests over SPIFFE mTLS from `concurrency` clients, prints
 * {@linkcode START_MARKER} when the measured window opens and one
 * {@linkcode LoadResult} JSON line at the end.
 *
 * @module
 */
import process from "node:process";
import { createMtlsClient } from "../../lib/mtls/client.ts";
import { openFileSvidSource } from "../../lib/spiffe/file_source.ts";
import { hasRole } from "../../lib/spiffe/roles.ts";
import { Spike } from "../../sdk/mod.ts";
import {
  type Latency,
  type LoadConfig,
  type LoadResult,
  type RequestSpec,
  START_MARKER,
} from "./load_spec.ts";

interface Prepared {
  readonly spec: RequestSpec;
  readonly url: string;
  readonly parts: readonly string[];
  readonly pathParts: readonly string[] | undefined;
  readonly fixed: Uint8Array | undefined;
  readonly contentType: string;
  readonly modulo: number;
  readonly latencies: number[];
}

const encoder = new TextEncoder();

function prepare(config: LoadConfig): Prepared[] {
  return config.requests.map((spec) => ({
    spec,
    url: `${config.url}${spec.route}`,
    parts: spec.body.split("{i}"),
    pathParts: spec.path?.split("{i}"),
    // A body without {i} is the same every time: encoded once, so the
    // client's CPU per request is the request's, not the encoding's.
    fixed: spec.binary
      ? Uint8Array.fromBase64(spec.body)
      : spec.body.includes("{i}")
      ? undefined
      : encoder.encode(spec.body),
    contentType: spec.contentType ?? "application/json",
    modulo: spec.modulo ?? 1,
    latencies: [],
  }));
}

// A weighted round: kind k appears weight(k) times, spread by a stride so a
// 90/10 mix does not send its writes in one burst.
function schedule(kinds: readonly Prepared[]): Prepared[] {
  const slots: Prepared[] = [];
  for (const kind of kinds) {
    for (let w = 0; w < (kind.spec.weight ?? 1); w++) slots.push(kind);
  }
  const stride = 7;
  if (slots.length % stride === 0) return slots;
  return slots.map((_, i) => slots[(i * stride) % slots.length]!);
}

function latencyOf(sorted: readonly number[]): Latency {
  if (sorted.length === 0) return { p50: 0, p99: 0, max: 0, mean: 0 };
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    p50: at(0.5),
    p99: at(0.99),
    max: sorted[sorted.length - 1]!,
    mean: sum / sorted.length,
  };
}

/** Sends one request of a kind; resolves to a failure text or undefined. */
type Send = (kind: Prepared, n: number) => Promise<string | undefined>;

async function mtlsSender(
  config: LoadConfig,
): Promise<{ send: Send; close(): Promise<void> }> {
  const source = await openFileSvidSource(config.svidDir, { watch: false });
  const client = createMtlsClient({
    source,
    authorizeServer: (id) => hasRole(id, "nexus"),
    keepAlive: config.keepAlive,
    timeoutMs: 30_000,
  });
  return {
    send: async (kind, n) => {
      const body = kind.fixed ??
        encoder.encode(kind.parts.join(String(n % kind.modulo)));
      const res = await client.post(kind.url, body, {
        contentType: kind.contentType,
      });
      return res.status === 200
        ? undefined
        : `HTTP ${res.status} ${
          new TextDecoder().decode(res.body).slice(0, 200)
        }`;
    },
    close: async () => {
      client.close();
      source.close();
      await source.settled();
    },
  };
}

// What an application does: one SDK client, `get`, use, zero.
async function sdkSender(
  config: LoadConfig,
): Promise<{ send: Send; close(): Promise<void> }> {
  const spike = await Spike.connect({
    nexusUrl: config.url,
    source: { svidDir: config.svidDir },
    attemptTimeoutMs: 30_000,
  });
  return {
    send: async (kind, n) => {
      if (kind.pathParts === undefined) return "no path for the SDK client";
      const secret = await spike.get(
        kind.pathParts.join(String(n % kind.modulo)),
      );
      secret.zero();
      return undefined;
    },
    close: () => spike.close(),
  };
}

async function run(config: LoadConfig): Promise<LoadResult> {
  const sender = config.client === "sdk"
    ? await sdkSender(config)
    : await mtlsSender(config);
  const kinds = prepare(config);
  const slots = schedule(kinds);
  let sequence = 0;
  let errors = 0;
  let firstError: string | undefined;
  const counted = config.count !== undefined;
  const started = performance.now();
  const windowStart = counted ? started : started + config.warmupMs;
  const windowEnd = windowStart + config.durationMs;
  let lastFinish = windowStart;
  let markerSent = false;
  let cpuAtStart = process.cpuUsage();
  const openWindow = () => {
    if (markerSent) return;
    markerSent = true;
    cpuAtStart = process.cpuUsage();
    console.log(START_MARKER);
  };
  if (counted) openWindow();
  const timer = counted
    ? undefined
    : setTimeout(openWindow, Math.max(0, windowStart - performance.now()));

  const worker = async () => {
    while (true) {
      const n = sequence++;
      if (counted ? n >= config.count! : performance.now() >= windowEnd) {
        return;
      }
      const kind = slots[n % slots.length]!;
      const t0 = performance.now();
      let failure: string | undefined;
      try {
        const problem = await sender.send(kind, n);
        if (problem !== undefined) failure = `${kind.spec.label}: ${problem}`;
      } catch (e) {
        failure = `${kind.spec.label}: ${(e as Error).message}`;
      }
      const t1 = performance.now();
      if (t0 < windowStart) continue;
      lastFinish = Math.max(lastFinish, t1);
      if (failure === undefined) {
        kind.latencies.push(t1 - t0);
      } else {
        errors++;
        firstError ??= failure;
      }
    }
  };
  try {
    await Promise.all(
      Array.from({ length: config.concurrency }, () => worker()),
    );
  } finally {
    clearTimeout(timer);
    await sender.close();
  }
  openWindow();
  const cpu = process.cpuUsage(cpuAtStart);
  const elapsedMs = counted ? lastFinish - windowStart : Math.max(
    config.durationMs,
    lastFinish - windowStart,
  );
  const all = kinds.flatMap((k) => k.latencies).sort((a, b) => a - b);
  const byLabel: LoadResult["byLabel"] = {};
  for (const kind of kinds) {
    const sorted = kind.latencies.sort((a, b) => a - b);
    byLabel[kind.spec.label] = { ok: sorted.length, ...latencyOf(sorted) };
  }
  const result: LoadResult = {
    ok: all.length,
    errors,
    elapsedMs,
    rps: elapsedMs > 0 ? all.length * 1000 / elapsedMs : 0,
    latency: latencyOf(all),
    byLabel,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
  return firstError === undefined ? result : { ...result, firstError };
}

if (import.meta.main) {
  const input = await new Response(Deno.stdin.readable).text();
  const result = await run(JSON.parse(input) as LoadConfig);
  console.log(JSON.stringify(result));
}
