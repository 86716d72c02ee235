// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task demo` must keep working: run its script as a subprocess with
 * exactly the flags of the "demo" task in deno.json, so the demo and the
 * task cannot rot apart from the code.
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;

/** The `deno run …` arguments of the "demo" task, without `deno`. */
async function demoTaskArgs(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const task: unknown = config.tasks?.demo;
  assert.equal(typeof task, "string", 'deno.json has no "demo" task');
  const [deno, ...args] = (task as string).trim().split(/\s+/);
  assert.equal(deno, "deno");
  assert.equal(args[0], "run");
  assert.equal(args.at(-1), "scripts/demo.ts");
  return args;
}

Deno.test("deno task demo walks through the whole story and exits 0", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: await demoTaskArgs(),
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
