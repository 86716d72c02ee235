// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The program's entry point: modes, --version, --help, unknown modes.
import assert from "node:assert/strict";
import { VERSION } from "../main.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function spike(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

Deno.test("spike --version prints the version", async () => {
  const res = await spike("--version");
  assert.equal(res.code, 0);
  assert.equal(res.stdout.trim(), `spike ${VERSION}`);
});

Deno.test("spike --help lists the three modes", async () => {
  const res = await spike("--help");
  assert.equal(res.code, 0);
  for (const mode of ["nexus", "keeper", "pilot"]) {
    assert.match(res.stdout, new RegExp(`spike ${mode}`));
  }
});

Deno.test("an unknown mode prints usage on stderr and exits 2", async () => {
  const res = await spike("vault");
  assert.equal(res.code, 2);
  assert.equal(res.stdout, "");
  assert.match(res.stderr, /Unknown mode "vault"/);
  assert.match(res.stderr, /Usage:/);
});

Deno.test("no mode at all exits 2 with usage", async () => {
  const res = await spike();
  assert.equal(res.code, 2);
  assert.match(res.stderr, /A mode is required/);
});
