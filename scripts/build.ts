// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task build [--target <triple>]…`: compiles main.ts into
 * `dist/spike` (or `dist/spike-<target>`) with the union of the modes'
 * permissions; each mode narrows itself at start (lib/permissions.ts).
 *
 * `deno compile` needs the `denort` runtime of this Deno's version for each
 * target. It downloads it once, or takes the file named by `DENORT_BIN`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ENV_ALLOW } from "./permission_flags.ts";

/** Targets `deno compile` can produce. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
] as const;

/**
 * The union of every mode's permissions; no `run`, no `ffi`. Environment
 * reads beyond SPIKE's own variables return undefined.
 */
export const COMPILE_PERMISSIONS = [
  "--no-prompt",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  `--allow-env=${ENV_ALLOW.join(",")}`,
  "--ignore-env",
];

/**
 * The `deno compile` arguments for one target.
 *
 * @param target a target triple, or undefined for the host
 * @returns the arguments after `deno`
 */
export function compileArgs(target: string | undefined): string[] {
  const output = target ? `dist/spike-${target}` : "dist/spike";
  return [
    "compile",
    ...COMPILE_PERMISSIONS,
    ...(target ? ["--target", target] : []),
    "--output",
    output,
    "main.ts",
  ];
}

/**
 * Where `deno compile` downloads the runtime it needs: `denort` of this
 * Deno's exact version, for the target.
 *
 * @param target a target triple, or undefined for the host
 * @returns the URL of the zip that holds `denort`
 */
export function denortUrl(target: string | undefined): string {
  return `https://dl.deno.land/release/v${Deno.version.deno}/denort-${
    target ?? Deno.build.target
  }.zip`;
}

// deno prints colours, an embedded file tree and, with RUST_BACKTRACE, a
// backtrace: the cause is the "error:" line and its "Caused by:" chain.
function compileCauses(stderr: string): string[] {
  // deno-lint-ignore no-control-regex
  const text = stderr.replace(/\x1b\[[0-9;]*m/g, "");
  const lines = text.split("\n");
  const error = lines.find((l) => l.startsWith("error: "))?.slice(7).trim();
  const causes: string[] = [];
  const from = lines.findIndex((l) => l.trim() === "Caused by:");
  if (from >= 0) {
    for (const line of lines.slice(from + 1)) {
      const cause = /^\s+\d+: (.*)$/.exec(line)?.[1]?.trim();
      if (cause === undefined) break;
      causes.push(cause);
    }
  }
  if (causes.length > 0) return causes;
  return [error ?? text.trim().split("\n").at(-1) ?? "unknown failure"];
}

/**
 * The one sentence to print when `deno compile` failed: for the runtime,
 * the exact `denort` URL and version it needs, and the real cause when
 * `DENORT_BIN` names an unusable file; else deno's own error and causes.
 *
 * @param stderr what `deno compile` printed on stderr
 * @param target the target triple, or undefined for the host
 * @param denortBin the `DENORT_BIN` value, if set
 * @returns the message
 */
export function explainCompileFailure(
  stderr: string,
  target: string | undefined,
  denortBin?: string,
): string {
  const causes = compileCauses(stderr);
  // A cause often ends with the text of the next ones; say each once.
  const cause = causes.filter((c, i) =>
    !causes.slice(0, i).some((earlier) => earlier.includes(c))
  ).join(": ");
  const runtime = `denort ${Deno.version.deno} for ${
    target ?? Deno.build.target
  }`;
  const fetchIt = `download ${
    denortUrl(target)
  } on a connected machine, unzip it, and set DENORT_BIN to the denort file`;
  if (denortBin) {
    if (/denort|base binary|binary bytes|ELF|Mach-O|object/i.test(stderr)) {
      return `DENORT_BIN=${denortBin} is not a usable ${runtime} (${cause}): ${fetchIt}, then run deno task build again`;
    }
  } else if (/dl\.deno\.land|denort|download/i.test(stderr)) {
    // The last cause is the root one (a DNS or connect error); the others
    // repeat the URL.
    const root = causes.at(-1);
    return `deno compile needs the runtime ${runtime} and could not download it (${root}): ${fetchIt}, then run deno task build again`;
  }
  return `deno compile failed: ${cause}`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { target: { type: "string", multiple: true } },
    strict: true,
  });
  for (const target of values.target ?? []) {
    if (!(TARGETS as readonly string[]).includes(target)) {
      console.error(
        `Unknown target "${target}": use one of ${TARGETS.join(", ")}`,
      );
      Deno.exit(2);
    }
  }
  const targets = values.target?.length ? values.target : [undefined];
  // deno compile makes dist/ before it knows it can build; a failed first
  // build must not leave an empty folder behind.
  const hadDist = await Deno.stat("dist").then(() => true, () => false);
  for (const target of targets) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: compileArgs(target),
      stdout: "inherit",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    if (out.code !== 0) {
      console.error(
        explainCompileFailure(stderr, target, Deno.env.get("DENORT_BIN")),
      );
      if (!hadDist) await Deno.remove("dist").catch(() => {});
      Deno.exit(1);
    }
    console.log(`Built ${compileArgs(target).at(-2)}`);
  }
}
