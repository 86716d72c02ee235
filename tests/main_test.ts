// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The program's entry point: modes, --version, --help, unknown modes.
import assert from "node:assert/strict";
import { VERSION } from "../main.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function spike(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-env", MAIN, ...args],
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

Deno.test("upstream's spike secret get is pointed to spike pilot, without echoing values", async () => {
  const res = await spike("secret", "put", "apps/db", "password=hunter2");
  assert.equal(res.code, 2);
  assert.equal(res.stdout, "");
  assert.equal(
    res.stderr,
    'Unknown mode "secret": operator commands run under pilot, as in "spike pilot secret put …"\n',
  );
  const status = await spike("status");
  assert.match(status.stderr, /"spike pilot status"/);
});

Deno.test("spike pilot --version and spike pilot help <command>", async () => {
  const version = await spike("pilot", "--version");
  assert.equal(version.stdout.trim(), `spike ${VERSION}`);
  const help = await spike("pilot", "help", "secret");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Manage secrets stored in SPIKE Nexus/);
  const sub = await spike("pilot", "help", "secret", "delete");
  assert.equal(sub.code, 0);
  assert.match(sub.stdout, /^Soft-delete versions of a secret/);
  const inGroup = await spike("pilot", "policy", "help", "apply");
  assert.match(inGroup.stdout, /^Create a policy or replace/);
});

Deno.test("no Deno permission advice reaches a user", async () => {
  // Pilot run with no read access: it may not read the policy file or the
  // SVID folder, and says so in its own words.
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/p.yaml`, "name: x\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-env",
        MAIN,
        "pilot",
        "policy",
        "apply",
        "--file",
        `${dir}/p.yaml`,
      ],
      env: { SPIKE_SVID_DIR: dir },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1);
    assert.equal(
      stderr,
      `Cannot read "${dir}/p.yaml": this process was not granted access to it (deno task spike grants each mode only the files, hosts and variables its configuration and arguments name)\n`,
    );
    assert.doesNotMatch(stderr, /--allow|run again/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
