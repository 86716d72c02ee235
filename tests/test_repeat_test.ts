// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { taskArgs } from "./task_support.ts";

// A suite with one test that fails on its first run only, one that always
// passes, and one step that fails on the second run only.
const FLAKY_SUITE = `
const counter = new URL("./runs", import.meta.url);
let run = 1;
try {
  run = Number(await Deno.readTextFile(counter)) + 1;
} catch {
  // First run.
}
await Deno.writeTextFile(counter, String(run));
Deno.test("fails on the first run", () => {
  if (run === 1) throw new Error("first run");
});
Deno.test("always passes", () => {});
Deno.test("has a step", async (t) => {
  await t.step("that fails on the second run", () => {
    if (run === 2) throw new Error("second run");
  });
});
`;

Deno.test("test:repeat runs the suite N times and names each test that failed at least once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/flaky_test.ts`, FLAKY_SUITE);
    const { code, stdout } = await new Deno.Command(Deno.execPath(), {
      args: [...await taskArgs("test:repeat"), "3", `${dir}/flaky_test.ts`],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(stdout);
    assert.equal(code, 1, out);
    assert.match(out, /run 1\/3: failed/);
    assert.match(out, /run 2\/3: failed/);
    assert.match(out, /run 3\/3: passed/);
    assert.match(out, /2 of 3 runs failed/);
    assert.match(
      out,
      /fails on the first run \(.*flaky_test\.ts\): 1 of 3 runs/,
    );
    assert.match(out, /that fails on the second run.*: 1 of 3 runs/);
    assert.doesNotMatch(out, /always passes/);
    assert.equal(await Deno.readTextFile(`${dir}/runs`), "3");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("test:repeat reports success only when every run passed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/steady_test.ts`,
      'Deno.test("passes", () => {});\n',
    );
    const { code, stdout } = await new Deno.Command(Deno.execPath(), {
      args: [...await taskArgs("test:repeat"), "2", `${dir}/steady_test.ts`],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(stdout);
    assert.equal(code, 0, out);
    assert.match(out, /every test passed in all 2 runs/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
