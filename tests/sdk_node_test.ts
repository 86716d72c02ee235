// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The SDK on Node.js: `deno task build:sdk` builds the package, `npm pack`
 * packs it, `npm install --offline` installs the tarball into a fresh
 * application, and a Node program (tests/node/sdk_client.mjs) uses it
 * against a real cluster, SVID rotation included. The package's types are
 * checked from a TypeScript consumer.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DevWorkloadAgent, svidResponse } from "../scripts/dev_agent.ts";
import { taskArgs } from "./task_support.ts";
import { policyFor, startSdkCluster, TD } from "./sdk_support.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const PROGRAM = `${ROOT}tests/node/sdk_client.mjs`;
const APP = `spiffe://${TD}/workload/node`;
const ROTATED = `spiffe://${TD}/workload/node-rotated`;

async function run(
  command: string,
  args: string[],
  cwd: string,
  env?: Record<string, string>,
): Promise<string> {
  const out = await new Deno.Command(command, {
    args,
    cwd,
    ...(env === undefined ? {} : {
      env: { ...env, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
      clearEnv: true,
    }),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(
    out.success,
    `${command} ${args.join(" ")} failed:\n${
      new TextDecoder().decode(out.stderr)
    }\n${text}`,
  );
  return text;
}

/** Builds, packs and installs the package into a new application folder. */
async function installPackage(dir: string): Promise<string> {
  const out = `${dir}/sdk`;
  await run(
    Deno.execPath(),
    [...await taskArgs("build:sdk"), "--out", out],
    ROOT,
  );
  const packed = JSON.parse(
    await run("npm", ["pack", "--json", "--pack-destination", dir], out),
  ) as { filename: string }[];
  const tarball = `${dir}/${packed[0]!.filename}`;
  const app = `${dir}/app`;
  await Deno.mkdir(app);
  await Deno.writeTextFile(
    `${app}/package.json`,
    JSON.stringify({ name: "sdk-node-test", private: true, type: "module" }),
  );
  await run(
    "npm",
    ["install", "--offline", "--no-audit", "--no-fund", tarball],
    app,
  );
  await Deno.copyFile(PROGRAM, `${app}/sdk_client.mjs`);
  return app;
}

Deno.test("workload SDK on Node.js: built package against a real cluster", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spike-sdk-node-" });
  const cluster = await startSdkCluster({ node: APP }, [
    {
      name: "node-rw",
      spiffeidPattern: `spiffe://spike\\.ist/workload/node(-rotated)?`,
      pathPattern: "apps/node/.*",
      permissions: ["read", "write", "list"],
    },
    {
      name: "node-list",
      spiffeidPattern: `spiffe://spike\\.ist/workload/node(-rotated)?`,
      pathPattern: "spike/system/secret",
      permissions: ["list"],
    },
    policyFor("node-cipher", APP, "spike/system/cipher/exec", ["execute"]),
  ]);
  try {
    const app = await installPackage(dir);
    const manifest = JSON.parse(
      await Deno.readTextFile(`${app}/node_modules/@spike/sdk/package.json`),
    );
    assert.equal(manifest.dependencies, undefined, "no npm dependencies");

    const child = new Deno.Command("node", {
      args: ["sdk_client.mjs"],
      cwd: app,
      env: {
        SPIKE_NEXUS_API_URL: cluster.nexusUrl,
        SPIKE_SVID_DIR: cluster.svidDir("node"),
        ROTATED_ID: ROTATED,
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const steps = new Map<string, unknown>();
    const writer = child.stdin.getWriter();
    let pending = "";
    for await (
      const chunk of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf("\n")) !== -1) {
        const { step, value } = JSON.parse(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        steps.set(step, value);
        if (step === "rotate") {
          await cluster.issue("node", ROTATED);
          await writer.write(new TextEncoder().encode("go\n"));
          await writer.close();
        }
      }
    }
    const status = await child.status;
    const errors = await stderr;
    assert.equal(status.code, 0, `node failed:\n${errors}`);

    assert.match(String(steps.get("runtime")), /^node 2\d\./);
    assert.equal(steps.get("identity"), APP);
    assert.deepEqual(steps.get("get"), {
      user: "orders",
      password: "n0de-pass",
    });
    assert.equal(steps.get("getValue-bytes"), 9);
    assert.equal(steps.get("getValue-zeroed"), true);
    assert.deepEqual(steps.get("metadata"), { current: 2, versions: [1, 2] });
    assert.equal(steps.get("after-delete"), "n0de-pass");
    assert.equal(steps.get("after-undelete"), "second");
    assert.deepEqual(steps.get("list"), ["apps/node/db"]);
    assert.equal(steps.get("cipher"), "node cipher");
    assert.deepEqual(steps.get("denied"), {
      name: "SpikeDeniedError",
      code: "access_unauthorized",
      base: true,
      typed: true,
    });
    assert.deepEqual(steps.get("not-found"), {
      name: "SpikeNotFoundError",
      code: "api_not_found",
      base: true,
      typed: true,
    });
    assert.deepEqual(steps.get("watch"), { version: 2, password: "second" });
    assert.equal(steps.get("rotated"), ROTATED);
    assert.equal(steps.get("after-rotation"), "orders");
    assert.equal(steps.get("done"), true);
    assert.ok(!errors.includes("n0de-pass") && !errors.includes("second"));

    // The identity from a Workload API agent instead of an SVID directory.
    const socket = `${dir}/agent.sock`;
    const response = await svidResponse(cluster.ca, APP);
    const agent = await DevWorkloadAgent.start(
      socket,
      (call) => call.write(response),
    );
    try {
      const viaAgent = await run(
        "node",
        [
          "--input-type=module",
          "-e",
          `import { Spike } from "@spike/sdk";
const spike = await Spike.connect();
const user = await spike.getValue("apps/node/db", "user", { as: "text" });
console.log(JSON.stringify({ id: spike.spiffeId, user }));
await spike.close();`,
        ],
        app,
        {
          SPIKE_NEXUS_API_URL: cluster.nexusUrl,
          SPIFFE_ENDPOINT_SOCKET: `unix://${socket}`,
        },
      );
      assert.deepEqual(JSON.parse(viaAgent), { id: APP, user: "orders" });
    } finally {
      agent.stop();
    }

    // The package's types, as a TypeScript application sees them.
    await Deno.writeTextFile(
      `${app}/consumer.ts`,
      `// @ts-types="./node_modules/@spike/sdk/index.d.ts"
import { Spike, SpikeDeniedError, type SecretMetadata } from "./node_modules/@spike/sdk/index.js";
export async function read(): Promise<string> {
  const spike: Spike = await Spike.connect({ nexusUrl: ["https://a:1"], retry: { deadlineMs: 1 } });
  const meta: SecretMetadata = await spike.metadata("p");
  const text: string = await spike.getValue("p", "k", { as: "text" });
  const bytes: Uint8Array = await spike.getValue("p", "k");
  if (new SpikeDeniedError("x").code !== "access_unauthorized") throw new Error();
  return text + meta.currentVersion + bytes.length;
}
`,
    );
    await run(Deno.execPath(), ["check", "--no-config", "consumer.ts"], app);
  } finally {
    await cluster.close();
    await Deno.remove(dir, { recursive: true });
  }
});
