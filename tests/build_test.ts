// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The build script compiles with the union of the modes' scoped
// permissions (never -A), names its outputs per target, and explains a
// missing denort runtime in one sentence.
import assert from "node:assert/strict";
import {
  COMPILE_PERMISSIONS,
  compileArgs,
  denortUrl,
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

const DOWNLOAD_FAILURE = `\x1b[0m\x1b[32mCompile\x1b[0m main.ts to dist/spike
\x1b[0m\x1b[32mDownload\x1b[0m https://dl.deno.land/release/v2.9.6/denort-aarch64-apple-darwin.zip
\x1b[0m\x1b[1m\x1b[31merror\x1b[0m: Writing deno compile executable to temporary file 'dist/spike.tmp-1'

Caused by:
    0: Setting up base binary.
    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-aarch64-apple-darwin.zip): client error (Connect): dns error: failed to lookup address information: Name or service not known
    2: client error (Connect)
    3: dns error
    4: failed to lookup address information: Name or service not known

Stack backtrace:
   0: <unknown>
`;

Deno.test("a failed denort download names the exact runtime, its URL and DENORT_BIN", () => {
  const message = explainCompileFailure(
    DOWNLOAD_FAILURE,
    "aarch64-apple-darwin",
  );
  assert.equal(
    message,
    `deno compile needs the runtime denort ${Deno.version.deno} for aarch64-apple-darwin and could not download it (failed to lookup address information: Name or service not known): download https://dl.deno.land/release/v${Deno.version.deno}/denort-aarch64-apple-darwin.zip on a connected machine, unzip it, and set DENORT_BIN to the denort file, then run deno task build again`,
  );
  assert.equal(
    denortUrl(undefined),
    `https://dl.deno.land/release/v${Deno.version.deno}/denort-${Deno.build.target}.zip`,
  );
});

Deno.test("other compile failures give deno's error and causes, not its backtrace", () => {
  assert.equal(
    explainCompileFailure(
      '\x1b[31merror\x1b[0m: Module not found "file:///x.ts".\n\nStack backtrace:\n   0: <unknown>\n',
      undefined,
    ),
    'deno compile failed: Module not found "file:///x.ts".',
  );
});

Deno.test("deno task build with a wrong DENORT_BIN says why, and leaves no empty dist/", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const hadDist = await Deno.stat(`${root}/dist`).then(() => true, () => false);
  for (
    const [bin, cause] of [
      [
        "/nonexistent/denort",
        /Could not find denort at '\/nonexistent\/denort'/,
      ],
      [new URL(import.meta.url).pathname, /Not an ELF file|Mach-O|object/i],
    ] as const
  ) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-env",
        "--allow-read",
        "--allow-write",
        "--allow-run",
        "scripts/build.ts",
      ],
      cwd: root,
      env: { DENORT_BIN: bin },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1);
    assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
    assert.match(
      stderr,
      new RegExp(
        `^DENORT_BIN=${bin} is not a usable denort ${
          Deno.version.deno.replaceAll(".", "\\.")
        } for `,
      ),
    );
    assert.match(stderr, cause);
    assert.doesNotMatch(stderr, /backtrace|Embedded Files/i);
    assert.equal(
      await Deno.stat(`${root}/dist`).then(() => true, () => false),
      hadDist,
    );
  }
});
