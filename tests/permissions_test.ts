// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Each mode drops the permission classes it never uses, even when started
// with the union of all modes' permissions (as the compiled binary is).
import assert from "node:assert/strict";
import { COMPILE_PERMISSIONS } from "../scripts/build.ts";
import { REVOKED_BY_MODE } from "../lib/permissions.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function statesAfterNarrowing(
  mode: string,
  extraEnv: Record<string, string> = {},
): Promise<Record<string, string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    // The compiled binary's permissions, plus run and ffi so that their
    // revocation is visible.
    args: [
      "run",
      ...COMPILE_PERMISSIONS,
      "--allow-run",
      "--allow-ffi",
      MAIN,
      mode,
    ],
    env: {
      SPIKE_SYSTEM_LOG_LEVEL: "DEBUG",
      SPIKE_SVID_DIR: "/nonexistent/spike-test",
      SPIKE_NEXUS_BACKEND_STORE: "memory",
      ...extraEnv,
    },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const line = new TextDecoder().decode(out.stderr).split("\n")
    .find((l) => l.includes("Permissions after narrowing"));
  assert.ok(line, `${mode} logged no permission states`);
  return JSON.parse(line);
}

for (const mode of ["nexus", "keeper", "pilot"] as const) {
  Deno.test(`${mode} mode drops ${REVOKED_BY_MODE[mode].join(", ")} at start`, async () => {
    const states = await statesAfterNarrowing(mode);
    for (const name of REVOKED_BY_MODE[mode]) {
      assert.notEqual(states[name], "granted", `${mode} still has ${name}`);
    }
    for (const name of ["net", "read"]) {
      assert.equal(states[name], "granted", `${mode} lost ${name}`);
    }
    assert.equal(
      states.write,
      mode === "keeper" ? "prompt" : "granted",
      "only the keeper gives up writing",
    );
  });
}

Deno.test("a keeper on a Workload API unix socket keeps write, which Deno needs to connect", async () => {
  const states = await statesAfterNarrowing("keeper", {
    SPIKE_SVID_DIR: "",
    SPIFFE_ENDPOINT_SOCKET: "unix:///nonexistent/spike-test.sock",
    SPIKE_SPIFFE_SOURCE_TIMEOUT: "100ms",
  });
  assert.equal(states.write, "granted");
  assert.notEqual(states.run, "granted");
});
