// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task spike <mode> …`: runs SPIKE as the compiled binary would, with
 * `deno run` permission flags scoped to this environment's configuration
 * (ports, SVID directory or socket, data and recovery folders).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { type Mode, permissionFlags } from "./permission_flags.ts";

const MODES: readonly string[] = ["nexus", "keeper", "pilot"];
const main = fileURLToPath(new URL("../main.ts", import.meta.url));
const config = fileURLToPath(new URL("../deno.json", import.meta.url));
// `deno task` runs in the folder of deno.json and keeps the operator's own
// folder in INIT_CWD: relative paths on the command line and in the
// environment mean that folder, so the mode runs there too.
const cwd = Deno.env.get("INIT_CWD") ?? Deno.cwd();
const [mode, ...args] = Deno.args;
const flags = mode !== undefined && MODES.includes(mode)
  ? permissionFlags(mode as Mode, { ...Deno.env.toObject(), PWD: cwd }, args)
  : ["--no-prompt"];
const child = new Deno.Command(Deno.execPath(), {
  // The mode runs outside the repository, so the import map is named.
  args: ["run", `--config=${config}`, ...flags, main, ...Deno.args],
  cwd,
  env: { PWD: cwd },
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => child.kill(signal));
}
Deno.exit((await child.status).code);
