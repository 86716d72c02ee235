// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The build script compiles with the union of the modes' scoped
// permissions (never -A), names its outputs per target, and explains a
// missing denort runtime in one sentence.
import assert from "node:assert/strict";
import {
  COMPILE_PERMISSIONS,
  compileArgs,
  explainCompileFailure,
  TARGETS,
} from "../scripts/build.ts";
import { REVOKED_BY_MODE } from "../lib/permissions.ts";

Deno.test("the compiled binary gets scoped permissions and never -A, run or ffi", () => {
  const args = compileArgs(undefined);
  for (const flag of ["-A", "--allow-all", "--allow-run", "--allow-ffi"]) {
    assert.ok(!args.includes(flag), `${flag} must not be compiled in`);
  }
  assert.ok(args.includes("--no-prompt"));
  assert.ok(
    args.some((a) => a.startsWith("--allow-env=SPIKE_*,")),
    "environment access is limited to SPIKE's variables",
  );
  for (const flag of COMPILE_PERMISSIONS) assert.ok(args.includes(flag));
  assert.deepEqual(args.slice(-3), ["--output", "dist/spike", "main.ts"]);
  // Every mode drops run and ffi at start anyway; the binary never had them.
  for (const revoked of Object.values(REVOKED_BY_MODE)) {
    assert.ok(revoked.includes("run") && revoked.includes("ffi"));
  }
});

Deno.test("each target gets its own output name", () => {
  for (const target of TARGETS) {
    const args = compileArgs(target);
    assert.equal(args[args.indexOf("--target") + 1], target);
    assert.equal(args[args.indexOf("--output") + 1], `dist/spike-${target}`);
  }
});

Deno.test("a failed denort download is explained in one sentence naming DENORT_BIN", () => {
  const message = explainCompileFailure(
    "error: Download https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip failed: error sending request",
    "aarch64-apple-darwin",
  );
  assert.match(
    message,
    /^deno compile could not get the denort runtime for aarch64-apple-darwin/,
  );
  assert.match(message, /DENORT_BIN/);
  assert.ok(!message.includes("\n"));
});

Deno.test("other compile failures pass deno's own message through", () => {
  assert.equal(
    explainCompileFailure(
      'error: Module not found "file:///x.ts".\n',
      undefined,
    ),
    'error: Module not found "file:///x.ts".',
  );
});
