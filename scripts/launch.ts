// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task spike <mode> …`: runs SPIKE as the compiled binary would, with
 * `deno run` permission flags scoped to this environment's configuration
 * (ports, SVID directory or socket, data and recovery folders).
 *
 * @module
 */
import { type Mode, permissionFlags } from "./permission_flags.ts";

const MODES: readonly string[] = ["nexus", "keeper", "pilot"];
const main = new URL("../main.ts", import.meta.url).pathname;
const [mode, ...args] = Deno.args;
const flags = mode !== undefined && MODES.includes(mode)
  ? permissionFlags(mode as Mode, {
    ...Deno.env.toObject(),
    PWD: Deno.cwd(),
  }, args)
  : ["--no-prompt"];
const child = new Deno.Command(Deno.execPath(), {
  args: ["run", ...flags, main, ...Deno.args],
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => child.kill(signal));
}
Deno.exit((await child.status).code);
