// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The profile pass: read and write load against a nexus running under
 * V8's `--cpu-prof`, and a summary of where its CPU time went.
 *
 * @module
 */
import type { Measured } from "./load.ts";
import type { BenchOptions } from "./options.ts";
import { type CipherForm, createBenchCluster, Scenarios } from "./scenarios.ts";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

/** A `.cpuprofile` file as V8 writes it. */
export interface CpuProfile {
  /** When profiling started, µs of the system's monotonic clock. */
  startTime: number;
  /** The call tree. */
  nodes: ProfileNode[];
  /** The node sampled at each tick. */
  samples: number[];
  /** Microseconds since the previous sample. */
  timeDeltas: number[];
}

/** Time spent in one function. */
export interface HotFunction {
  /** `name file:line`. */
  readonly where: string;
  /** Share of busy samples spent in the function itself. */
  readonly selfShare: number;
  /** Share of busy samples with the function on the stack. */
  readonly totalShare: number;
}

const IDLE = new Set(["(idle)", "(program)", "(root)"]);

function shortUrl(url: string): string {
  const root = new URL("../..", import.meta.url).href;
  if (url.startsWith(root)) return url.slice(root.length);
  const npm = url.match(/\/npm\/[^/]+\/(.+)$/);
  if (npm) return `npm:${npm[1]}`;
  return url.replace(/^ext:/, "ext:");
}

function keyOf(frame: CallFrame): string {
  const name = frame.functionName || "(anonymous)";
  if (frame.url === "") return name;
  return `${name} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
}

/** A stretch of the system's monotonic clock, in seconds. */
export interface Window {
  /** Start. */
  readonly startS: number;
  /** End. */
  readonly endS: number;
}

/**
 * Self and inclusive time per function over the busy samples (idle and
 * program samples left out), optionally only those inside some windows.
 *
 * @param profile the profile
 * @param windows the measured windows; default the whole profile
 * @returns functions, hottest by self time first, and busy milliseconds
 */
export function summarize(
  profile: CpuProfile,
  windows?: readonly Window[],
): { functions: HotFunction[]; busyMs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let busy = 0;
  let atUs = profile.startTime;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = profile.timeDeltas[i] ?? 0;
    atUs += dt;
    const atS = atUs / 1e6;
    if (windows && !windows.some((w) => atS >= w.startS && atS < w.endS)) {
      return;
    }
    if (!node || IDLE.has(node.callFrame.functionName)) return;
    busy += dt;
    const own = keyOf(node.callFrame);
    self.set(own, (self.get(own) ?? 0) + dt);
    // Count each function once per sample, however deep it recurses.
    const seen = new Set<string>();
    for (
      let at: number | undefined = id;
      at !== undefined;
      at = parent.get(at)
    ) {
      const frame = byId.get(at)!.callFrame;
      if (frame.functionName === "(root)") break;
      const key = keyOf(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      total.set(key, (total.get(key) ?? 0) + dt);
    }
  });
  const functions = [...total.keys()].map((where) => ({
    where,
    selfShare: busy > 0 ? (self.get(where) ?? 0) / busy : 0,
    totalShare: busy > 0 ? total.get(where)! / busy : 0,
  }));
  functions.sort((a, b) => b.selfShare - a.selfShare);
  return { functions, busyMs: busy / 1000 };
}

function pct(share: number): string {
  return `${(share * 100).toFixed(1)} %`;
}

/**
 * Text report of a profile: hottest functions by self time, and the
 * project's own functions by inclusive time, each as a share of the busy
 * samples and in main-thread µs per request.
 *
 * @param profile the profile
 * @param load what ran and how many requests it answered
 * @param limit rows per list
 * @returns the report
 */
export function profileReport(
  profile: CpuProfile,
  load: {
    readonly label: string;
    readonly requests: number;
    readonly windows?: readonly Window[];
  },
  limit = 15,
): string {
  const { functions, busyMs } = summarize(profile, load.windows);
  const own = functions
    .filter((f) => /^\S+ (lib|modes)\//.test(f.where))
    .sort((a, b) => b.totalShare - a.totalShare);
  const perRequest = (share: number) =>
    load.requests > 0
      ? (share * busyMs * 1000 / load.requests).toFixed(1).padStart(7)
      : "";
  const line = (share: number, where: string) =>
    `  ${pct(share).padStart(7)} ${perRequest(share)}  ${where}`;
  return [
    `Nexus CPU profile (${load.label}): ${
      busyMs.toFixed(0)
    } ms busy on the main thread, ${load.requests} requests (${
      perRequest(1).trim()
    } µs each)`,
    "",
    "Hottest functions, self time (share, µs per request):",
    ...functions.slice(0, limit).map((f) => line(f.selfShare, f.where)),
    "",
    "SPIKE functions, inclusive time (share, µs per request):",
    ...own.slice(0, limit).map((f) => line(f.totalShare, f.where)),
  ].join("\n");
}

function runNamed(scenarios: Scenarios, name: string): Promise<Measured> {
  if (name === "read") return scenarios.loadRead();
  if (name === "write") return scenarios.loadWrite();
  const [, form, size] = name.split("-");
  return scenarios.loadCipher(form as CipherForm, Number(size));
}

/**
 * Runs loads against a nexus under `--cpu-prof`, one after the other, and
 * summarizes the profile it writes on exit; the profile itself is kept as
 * `nexus.cpuprofile` in the output folder.
 *
 * @param opts the options (concurrency, window, size)
 * @param names the loads, from `PROFILE_SCENARIOS` (options.ts)
 * @returns the text report
 */
export async function profileScenarios(
  opts: BenchOptions,
  names: readonly string[],
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "spike-bench-prof-" });
  const profDir = `${dir}/prof`;
  const cluster = await createBenchCluster(dir, [
    "--cpu-prof",
    `--cpu-prof-dir=${profDir}`,
  ]);
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    const scenarios = new Scenarios(cluster, opts);
    await scenarios.setup(false);
    let requests = 0;
    const windows: Window[] = [];
    for (const name of names) {
      const m = await runNamed(scenarios, name);
      requests += m.load.ok;
      windows.push(m.server.window);
    }
    // A polite stop: V8 writes the profile when the process exits.
    await cluster.stopNexus("SIGTERM");
    let file: string | undefined;
    for await (const entry of Deno.readDir(profDir)) {
      if (entry.name.endsWith(".cpuprofile")) file = entry.name;
    }
    if (file === undefined) return "No CPU profile was written";
    const text = await Deno.readTextFile(`${profDir}/${file}`);
    // Kept for Chrome DevTools or any .cpuprofile viewer.
    await Deno.mkdir(opts.out, { recursive: true });
    await Deno.writeTextFile(`${opts.out}/nexus.cpuprofile`, text);
    return profileReport(JSON.parse(text) as CpuProfile, {
      label: `${names.join(" then ")} load, measured windows only`,
      requests,
      windows,
    });
  } finally {
    await cluster.close();
    await Deno.remove(dir, { recursive: true });
  }
}
