// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Runs every `@example` of the SDK's JSDoc with `deno test --doc sdk/`,
 * against a real cluster: the examples that call nexus find it through
 * `SPIKE_NEXUS_API_URL` and `SPIKE_SVID_DIR`, as an application would, so
 * no example is only type-checked. The cluster holds what the examples
 * read (`docs/db`) under a workload policy.
 *
 * @module
 */
import assert from "node:assert/strict";
import { runtimeEnv } from "../scripts/cluster.ts";
import { policyFor, startSdkCluster, TD } from "./sdk_support.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DOCS = `spiffe://${TD}/workload/docs`;

Deno.test("workload SDK: every JSDoc example runs against a real nexus", async () => {
  const cluster = await startSdkCluster({ docs: DOCS }, [
    policyFor("docs-rw", DOCS, "docs/.*", ["read", "write", "list"]),
    policyFor("docs-list", DOCS, "spike/system/secret", ["list"]),
    policyFor("docs-cipher", DOCS, "spike/system/cipher/exec", ["execute"]),
  ]);
  try {
    const seeded = await cluster.call("superuser", "/v1/store/secrets", {
      path: "docs/db",
      values: { user: "orders", password: "correct horse battery staple" },
    });
    assert.equal(seeded.status, 200);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "test",
        "--doc",
        "--no-prompt",
        "--allow-env",
        "--allow-read",
        "--allow-net",
        "sdk/",
      ],
      cwd: ROOT,
      env: {
        ...runtimeEnv(),
        SPIKE_NEXUS_API_URL: cluster.nexusUrl,
        SPIKE_SVID_DIR: cluster.svidDir("docs"),
      },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr);
    assert.ok(out.success, text);
    const passed = /(\d+) passed/.exec(text)?.[1];
    assert.ok(Number(passed) >= 20, `only ${passed} examples ran:\n${text}`);
  } finally {
    await cluster.close();
  }
});
