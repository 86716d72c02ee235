// Copyright 2026 the SPIKE for Deno authors. MIT license.
// A first run on an empty Deno cache (a fresh clone's first `deno task
// up`) prints no npm lifecycle-script warning: protobufjs's install script
// (a version check, not needed at run time) is denied in deno.json, which
// keeps Deno from suggesting "nodeModulesDir": "auto".
import assert from "node:assert/strict";

Deno.test("the dev CA's first run on an empty cache prints no nodeModulesDir warning", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const denoDir = await Deno.makeTempDir({ prefix: "spike-deno-dir-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "scripts/dev_ca.ts",
      ],
      cwd: root,
      env: { DENO_DIR: denoDir, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    // The script ran (it prints its usage without arguments).
    assert.match(stderr, /Usage: dev_ca\.ts init/);
    assert.doesNotMatch(stderr, /nodeModulesDir|Ignored build scripts/);
    assert.doesNotMatch(stderr, /Warning/);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});
