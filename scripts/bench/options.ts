// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Command-line options of `deno task bench`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseDuration } from "../../lib/config/duration.ts";

/** Loads the profile pass can run, by their `results.json` row id. */
export const PROFILE_SCENARIOS = [
  "read",
  "write",
  "cipher-json-64",
  "cipher-json-65520",
  "cipher-stream-64",
  "cipher-stream-65520",
] as const;

/**
 * Groups of scenarios `--only` can pick, in the order a full run measures
 * them; each carries the baseline its ratios are taken against.
 */
export const SCENARIO_GROUPS = [
  "read-write",
  "sdk",
  "mixed-16",
  "mixed-64",
  "fresh",
  "cipher",
  "pilot",
  "scale",
  "lifecycle",
  "recovery",
] as const;

/** One of {@linkcode SCENARIO_GROUPS}. */
export type ScenarioGroup = typeof SCENARIO_GROUPS[number];

/** Help text of `deno task bench`. */
export const HELP = `deno task bench [options]

Starts a local SPIKE cluster (dev CA, 5 keepers, threshold 3, nexus on
SQLite), loads it from a separate client process over mTLS and prints one
table; writes results.json, results.md and chart.svg to the output folder.

Options:
  --quick             short preset: under a minute (1s windows, 5,000 secrets)
  --duration D        measured window per scenario, Go duration [10s; quick 1s]
  --concurrency N     concurrent clients for read/write/cipher [16]
  --size N            secret value bytes [64]
  --scale N           secrets for the scale scenario (x3 versions) [100000;
                      quick 5000]; policies: N/100, at most 1,000
  --only G            only these scenario groups, a comma list of
                      read-write (baseline-16, read, write, raw commits),
                      sdk, mixed-16, mixed-64 (with write-64), fresh,
                      cipher, pilot, scale (fill, restart, lists, reads at
                      scale), lifecycle (rotate, rekey, backup on the scale
                      store: runs scale too), recovery; no PostgreSQL pass
  --profile           also run read and write with nexus under --cpu-prof and
                      print the hottest functions (share and µs per request,
                      measured windows only)
  --profile-only L    only the profile pass, no table: the loads in L, a
                      comma list of read, write, cipher-json-64,
                      cipher-json-65520, cipher-stream-64, cipher-stream-65520
  --out DIR           output folder [bench]
  -h, --help          this help`;

/** Parsed options. */
export interface BenchOptions {
  /** Whether the quick preset runs. */
  readonly quick: boolean;
  /** Measured window per scenario, ms. */
  readonly durationMs: number;
  /** Unmeasured run-in before each window, ms. */
  readonly warmupMs: number;
  /** Concurrent clients for the main scenarios. */
  readonly concurrency: number;
  /** Secret value size in bytes. */
  readonly size: number;
  /** Secrets in the scale scenario. */
  readonly scale: number;
  /** Policies in the scale scenario. */
  readonly policies: number;
  /** Pilot runs measured. */
  readonly pilotRuns: number;
  /** The scenario groups to run, in run order. */
  readonly groups: readonly ScenarioGroup[];
  /** Whether `--only` narrowed the groups (then no PostgreSQL pass). */
  readonly only: boolean;
  /** The loads of the profile pass; empty: no profile pass. */
  readonly profile: readonly string[];
  /** Whether only the profile pass runs. */
  readonly profileOnly: boolean;
  /** Output folder. */
  readonly out: string;
  /** The command line, for the report. */
  readonly command: string;
}

/** Raised for invalid options; the message is for the operator. */
export class OptionsError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "OptionsError";
  }
}

function positive(value: string | undefined, name: string, fallback: number) {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new OptionsError(`--${name} must be a whole number from 1`);
  }
  return n;
}

/**
 * Parses the benchmark's arguments.
 *
 * @param args the arguments
 * @returns the options, or "help"
 * @throws {OptionsError} for unknown or invalid options
 */
export function parseOptions(args: string[]): BenchOptions | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: "boolean", default: false },
        duration: { type: "string" },
        concurrency: { type: "string" },
        size: { type: "string" },
        scale: { type: "string" },
        profile: { type: "boolean", default: false },
        "profile-only": { type: "string" },
        only: { type: "string" },
        out: { type: "string", default: "bench" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (e) {
    throw new OptionsError((e as Error).message);
  }
  if (values.help) return "help";
  const quick = values.quick;
  let durationMs = quick ? 1_000 : 10_000;
  if (values.duration !== undefined) {
    try {
      durationMs = parseDuration(values.duration);
    } catch {
      throw new OptionsError("--duration must be a Go duration, e.g. 5s");
    }
    if (durationMs < 100) {
      throw new OptionsError("--duration must be at least 100ms");
    }
  }
  const scale = positive(values.scale, "scale", quick ? 5_000 : 100_000);
  const size = positive(values.size, "size", 64);
  if (size > 512 * 1024) {
    throw new OptionsError("--size must be at most 512 KiB");
  }
  const only = values["profile-only"]?.split(",").map((s) => s.trim());
  const unknown = only?.find((name) =>
    !(PROFILE_SCENARIOS as readonly string[]).includes(name)
  );
  if (unknown !== undefined) {
    throw new OptionsError(
      `--profile-only takes ${PROFILE_SCENARIOS.join(", ")}; not "${unknown}"`,
    );
  }
  const groups = values.only?.split(",").map((s) => s.trim());
  const unknownGroup = groups?.find((name) =>
    !(SCENARIO_GROUPS as readonly string[]).includes(name)
  );
  if (unknownGroup !== undefined) {
    throw new OptionsError(
      `--only takes ${SCENARIO_GROUPS.join(", ")}; not "${unknownGroup}"`,
    );
  }
  return {
    quick,
    durationMs,
    warmupMs: Math.min(1_000, Math.max(200, durationMs / 5)),
    concurrency: positive(values.concurrency, "concurrency", 16),
    size,
    scale,
    policies: Math.min(1_000, Math.max(1, Math.floor(scale / 100))),
    pilotRuns: quick ? 5 : 20,
    // The lifecycle rows run on the scale store.
    groups: SCENARIO_GROUPS.filter((g) =>
      groups === undefined || groups.includes(g) ||
      (g === "scale" && groups.includes("lifecycle"))
    ),
    only: groups !== undefined,
    profile: only ?? (values.profile ? ["read", "write"] : []),
    profileOnly: only !== undefined,
    out: values.out,
    command: ["deno task bench", ...args].join(" "),
  };
}
