// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Runs a process on a pseudo-terminal, for what SPIKE does only on a
 * terminal. Uses util-linux `script`, which gives the child a pty for stdin,
 * stdout and stderr and exits with the child's code.
 *
 * @module
 */
import { runtimeEnv } from "../scripts/cluster.ts";
import { permissionFlags } from "../scripts/permission_flags.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Whether `script` is there to make a pty. */
export const HAS_SCRIPT = await new Deno.Command("script", { args: ["-V"] })
  .output().then((o) => o.success, () => false);

function quote(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`;
}

/** What a process on a pty printed (stdout and stderr together) and its code. */
export interface PtyResult {
  /** Exit code of the process. */
  code: number;
  /** Everything it wrote to the terminal, with CR LF as LF. */
  output: string;
}

/**
 * Runs `spike pilot …` on a pty, with the launcher's scoped flags.
 *
 * @param args pilot arguments
 * @param env pilot's environment
 * @param cwd the folder pilot runs in
 * @param timeoutMs killed after this long
 * @returns the exit code and what reached the terminal
 */
export async function pilotOnPty(
  args: string[],
  env: Record<string, string>,
  cwd: string,
  timeoutMs = 60_000,
): Promise<PtyResult> {
  const command = [
    Deno.execPath(),
    "run",
    ...permissionFlags("pilot", { ...env, PWD: cwd }, args),
    MAIN,
    "pilot",
    ...args,
  ].map(quote).join(" ");
  const child = new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    env: { ...runtimeEnv(), ...env, TERM: "dumb" },
    clearEnv: true,
    cwd,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    await child.stdin.close();
    const out = await child.output();
    return {
      code: out.code,
      output: new TextDecoder().decode(out.stdout).replaceAll("\r\n", "\n"),
    };
  } finally {
    clearTimeout(timer);
  }
}
