// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task build [--target <triple>]…`: compiles main.ts into
 * `dist/spike` (or `dist/spike-<target>`) with the union of the modes'
 * permissions; each mode narrows itself at start (lib/permissions.ts).
 *
 * `deno compile` needs the `denort` runtime for each target. It downloads
 * it once, or takes the file named by `DENORT_BIN`.
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
 * The one sentence to print when `deno compile` failed: a clear word about
 * the missing runtime when that is the cause, else deno's own message.
 *
 * @param stderr what `deno compile` printed on stderr
 * @param target the target triple, or undefined for the host
 * @returns the message
 */
export function explainCompileFailure(
  stderr: string,
  target: string | undefined,
): string {
  if (/denort|download|dl\.deno\.land|network|dns|connect/i.test(stderr)) {
    return `deno compile could not get the denort runtime${
      target ? ` for ${target}` : ""
    } (no network here): download denort once on a connected machine and set DENORT_BIN to its path, then run deno task build again`;
  }
  return stderr.trim();
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
  for (const target of targets) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: compileArgs(target),
      stdout: "inherit",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    if (out.code !== 0) {
      console.error(explainCompileFailure(stderr, target));
      Deno.exit(1);
    }
    console.log(`Built ${compileArgs(target).at(-2)}`);
  }
}
