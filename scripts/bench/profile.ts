// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The profile pass: read and write load against a nexus running under
 * V8's `--cpu-prof`, and a summary of where its CPU time went.
 *
 * @module
 */
import type { BenchOptions } from "./options.ts";
import { createBenchCluster, Scenarios } from "./scenarios.ts";

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

/**
 * Self and inclusive time per function over the busy samples (idle and
 * program samples left out).
 *
 * @param profile the profile
 * @returns functions, hottest by self time first, and busy milliseconds
 */
export function summarize(
  profile: CpuProfile,
): { functions: HotFunction[]; busyMs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = profile.timeDeltas[i] ?? 0;
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
 * project's own functions by inclusive time.
 *
 * @param profile the profile
 * @param limit rows per list
 * @returns the report
 */
export function profileReport(profile: CpuProfile, limit = 15): string {
  const { functions, busyMs } = summarize(profile);
  const own = functions
    .filter((f) => /^\S+ (lib|modes)\//.test(f.where))
    .sort((a, b) => b.totalShare - a.totalShare);
  return [
    `Nexus CPU profile (read then write load): ${busyMs.toFixed(0)} ms busy`,
    "",
    "Hottest functions, self time:",
    ...functions.slice(0, limit).map((f) =>
      `  ${pct(f.selfShare).padStart(7)}  ${f.where}`
    ),
    "",
    "SPIKE functions, inclusive time:",
    ...own.slice(0, limit).map((f) =>
      `  ${pct(f.totalShare).padStart(7)}  ${f.where}`
    ),
  ].join("\n");
}

/**
 * Runs read and write load against a nexus under `--cpu-prof` and
 * summarizes the profile it writes on exit; the profile itself is kept as
 * `nexus.cpuprofile` in the output folder.
 *
 * @param opts the options (concurrency, window, size)
 * @returns the text report
 */
export async function profileReadWrite(opts: BenchOptions): Promise<string> {
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
    await scenarios.loadRead();
    await scenarios.loadWrite();
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
    return profileReport(JSON.parse(text) as CpuProfile);
  } finally {
    await cluster.close();
    await Deno.remove(dir, { recursive: true });
  }
}
