// Copyright 2026 the SPIKE for Deno authors. MIT license.
// A supervisor may stop a mode the moment it says it listens: the stop must
// still be the polite one (listeners in place, exit code 0), never the
// default death by signal.
import assert from "node:assert/strict";
import { Cluster, runtimeEnv } from "../scripts/cluster.ts";
import { permissionFlags } from "../scripts/permission_flags.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const ROUNDS = 8;

/** Starts `mode`, sends SIGTERM on its "listening" line, returns the exit. */
async function stopOnListening(
  mode: "nexus" | "keeper",
  env: Record<string, string>,
): Promise<{ code: number; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissionFlags(mode, env), MAIN, mode],
    env: { ...runtimeEnv(), ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  let signalled = false;
  const decoder = new TextDecoder();
  for await (const chunk of child.stderr) {
    stderr += decoder.decode(chunk, { stream: true });
    if (!signalled && stderr.includes("listening on port")) {
      signalled = true;
      child.kill("SIGTERM");
    }
  }
  return { code: (await child.status).code, stderr };
}

Deno.test("keeper and nexus stop cleanly on a SIGTERM sent the moment they say they listen", async () => {
  const cluster = await Cluster.create({
    keepers: 1,
    backend: "memory",
    logLevel: "WARN",
  });
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (
        const [mode, env] of [
          ["keeper", cluster.keeperEnv(1)],
          ["nexus", cluster.nexusEnv()],
        ] as const
      ) {
        const { code, stderr } = await stopOnListening(mode, env);
        assert.equal(code, 0, `${mode}, round ${round}: ${stderr}`);
      }
    }
  } finally {
    await cluster.close();
  }
});
