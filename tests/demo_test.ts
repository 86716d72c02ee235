// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task demo` must keep working: run its script as a subprocess with
 * exactly the flags of the "demo" task in deno.json, so the demo and the
 * task cannot rot apart from the code.
 */
import assert from "node:assert/strict";
import { taskArgs } from "./task_support.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("deno task demo walks through the whole story and exits 0", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: await taskArgs("demo"),
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(
    out.code,
    0,
    `demo exited ${out.code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`,
  );
  assert.match(stdout, /Demo complete/);
  assert.match(stdout, /SPIKE is now restored and ready to use/);
  assert.match(stdout, /password: correct-horse-battery-staple/);
});
