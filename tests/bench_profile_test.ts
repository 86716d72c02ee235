// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The profile summary of the benchmark: shares, µs per request and the
// measured-window filter, on a hand-made profile.
import assert from "node:assert/strict";
import {
  type CpuProfile,
  profileReport,
  summarize,
} from "../scripts/bench/profile.ts";
import { parseOptions } from "../scripts/bench/options.ts";

const ROOT = new URL("..", import.meta.url).href;

// root -> handler (modes/nexus/router.ts) -> decrypt; root -> (idle).
// Samples every 1,000 µs from t = 10 s: idle, handler, decrypt, decrypt,
// then handler twice after 10.1 s.
const profile: CpuProfile = {
  startTime: 10_000_000,
  nodes: [
    {
      id: 1,
      callFrame: { functionName: "(root)", url: "", lineNumber: 0 },
      children: [2, 4],
    },
    {
      id: 2,
      callFrame: {
        functionName: "handler",
        url: `${ROOT}modes/nexus/router.ts`,
        lineNumber: 69,
      },
      children: [3],
    },
    {
      id: 3,
      callFrame: { functionName: "decrypt", url: "", lineNumber: 0 },
    },
    {
      id: 4,
      callFrame: { functionName: "(idle)", url: "", lineNumber: 0 },
    },
  ],
  samples: [4, 2, 3, 3, 2, 2],
  timeDeltas: [1_000, 1_000, 1_000, 1_000, 100_000, 1_000],
};

Deno.test("summarize counts busy samples only, self and inclusive", () => {
  const { functions, busyMs } = summarize(profile);
  assert.equal(busyMs, 104);
  const decrypt = functions.find((f) => f.where === "decrypt")!;
  assert.equal(decrypt.selfShare, 2_000 / 104_000);
  const handler = functions.find((f) => f.where.startsWith("handler"))!;
  assert.equal(handler.where, "handler modes/nexus/router.ts:70");
  assert.equal(handler.totalShare, 1);
});

Deno.test("summarize keeps only samples inside the measured windows", () => {
  // The window ends before the two late handler samples.
  const { functions, busyMs } = summarize(profile, [
    { startS: 10.0015, endS: 10.05 },
  ]);
  assert.equal(busyMs, 3);
  assert.equal(functions.find((f) => f.where === "decrypt")!.selfShare, 2 / 3);
});

Deno.test("the profile report gives µs per request", () => {
  const report = profileReport(profile, {
    label: "read load",
    requests: 4,
    windows: [{ startS: 10, endS: 11 }],
  });
  assert.match(
    report,
    /104 ms busy on the main thread, 4 requests \(26000\.0 µs each\)/,
  );
  assert.match(report, /\s1\.9 %\s+500\.0\s+decrypt/);
  assert.match(
    report,
    /100\.0 %\s+26000\.0\s+handler modes\/nexus\/router\.ts:70/,
  );
});

Deno.test("--profile-only takes known loads and skips the table", () => {
  const opts = parseOptions(["--profile-only", "read, cipher-json-65520"]);
  assert.ok(opts !== "help");
  assert.deepEqual(opts.profile, ["read", "cipher-json-65520"]);
  assert.equal(opts.profileOnly, true);
  const plain = parseOptions(["--profile"]);
  assert.ok(plain !== "help");
  assert.deepEqual(plain.profile, ["read", "write"]);
  assert.equal(plain.profileOnly, false);
  assert.throws(
    () => parseOptions(["--profile-only", "reed"]),
    /--profile-only takes read, write, .*; not "reed"/,
  );
});

Deno.test("bench --only runs the named scenario groups in run order, no PostgreSQL pass", () => {
  const opts = parseOptions(["--only", "scale, read-write"]);
  assert.ok(opts !== "help");
  assert.deepEqual(opts.groups, ["read-write", "scale"]);
  assert.equal(opts.only, true);
  const all = parseOptions([]);
  assert.ok(all !== "help");
  assert.equal(all.groups.length, 10);
  const lifecycle = parseOptions(["--only", "lifecycle"]);
  assert.ok(lifecycle !== "help");
  assert.deepEqual(lifecycle.groups, ["scale", "lifecycle"]);
  assert.equal(all.only, false);
  assert.throws(
    () => parseOptions(["--only", "write"]),
    /--only takes read-write, sdk, .*; not "write"/,
  );
});
