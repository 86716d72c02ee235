// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The examples in examples/ run as a user would run them, against a real
 * cluster with the workload policy the README gives: the Deno service with
 * scoped permissions, the Node service with the packed SDK installed. Both
 * load the database password, then pick up a rotated one without a
 * restart, and neither prints it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { freePort, runtimeEnv } from "../scripts/cluster.ts";
import { taskArgs } from "./task_support.ts";
import { eventually, startSdkCluster, TD } from "./sdk_support.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const ORDERS = `spiffe://${TD}/workload/orders`;

async function ok(command: string, args: string[], cwd: string) {
  const out = await new Deno.Command(command, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

/** A running example service and what it printed. */
class Service {
  readonly #child: Deno.ChildProcess;
  readonly output: Promise<string>;
  readonly port: number;

  constructor(child: Deno.ChildProcess, port: number) {
    this.#child = child;
    this.port = port;
    const text = (s: ReadableStream<Uint8Array>) => new Response(s).text();
    this.output = Promise.all([text(child.stdout), text(child.stderr)])
      .then(([a, b]) => a + b);
  }

  async health(): Promise<Record<string, unknown> | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.port}/healthz`);
      return await res.json();
    } catch {
      return undefined;
    }
  }

  async stop(): Promise<{ code: number; output: string }> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    const status = await this.#child.status;
    return { code: status.code, output: await this.output };
  }
}

Deno.test("examples: Deno and Node services read and follow the database password", async () => {
  const cluster = await startSdkCluster({ orders: ORDERS }, [
    // The policy of the README's "Using SPIKE from your application".
    {
      name: "orders-db",
      spiffeidPattern: "^spiffe://spike\\.ist/workload/orders$",
      pathPattern: "^apps/orders/db$",
      permissions: ["read"],
    },
  ]);
  const dir = await Deno.makeTempDir({ prefix: "spike-sdk-examples-" });
  const services: Service[] = [];
  try {
    const put = (password: string) =>
      cluster.call("superuser", "/v1/store/secrets", {
        path: "apps/orders/db",
        values: { user: "orders", password },
      });
    assert.equal((await put("first-Pa55word")).status, 200);
    const env = {
      SPIKE_NEXUS_API_URL: cluster.nexusUrl,
      SPIKE_SVID_DIR: cluster.svidDir("orders"),
      SECRET_POLL_MS: "200",
    };

    const denoPort = freePort();
    services.push(
      new Service(
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--no-prompt",
            "--allow-env",
            "--allow-net=127.0.0.1",
            `--allow-read=${cluster.svidDir("orders")}`,
            "examples/deno_service/main.ts",
          ],
          cwd: ROOT,
          env: { ...runtimeEnv(), ...env, PORT: String(denoPort) },
          clearEnv: true,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn(),
        denoPort,
      ),
    );

    // The Node service as its README says: the SDK package installed.
    const sdk = `${dir}/sdk`;
    await ok(
      Deno.execPath(),
      [...await taskArgs("build:sdk"), "--out", sdk],
      ROOT,
    );
    const [packed] = JSON.parse(
      await ok("npm", ["pack", "--json", "--pack-destination", dir], sdk),
    ) as { filename: string }[];
    const app = `${dir}/node_service`;
    await Deno.mkdir(app);
    for (const name of ["server.mjs", "package.json"]) {
      await Deno.copyFile(
        `${ROOT}examples/node_service/${name}`,
        `${app}/${name}`,
      );
    }
    await ok("npm", [
      "install",
      "--offline",
      "--no-audit",
      "--no-fund",
      `${dir}/${packed!.filename}`,
    ], app);
    const nodePort = freePort();
    services.push(
      new Service(
        new Deno.Command("node", {
          args: ["server.mjs"],
          cwd: app,
          env: {
            ...env,
            PORT: String(nodePort),
            PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          },
          clearEnv: true,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn(),
        nodePort,
      ),
    );

    for (const service of services) {
      await eventually(
        async () => (await service.health())?.passwordVersion === 1,
        `the service on ${service.port} to load version 1`,
        60_000,
      );
      assert.deepEqual(await service.health(), {
        ready: true,
        user: "orders",
        passwordVersion: 1,
      });
    }
    assert.equal((await put("second-Pa55word")).status, 200);
    for (const service of services) {
      await eventually(
        async () => (await service.health())?.passwordVersion === 2,
        `the service on ${service.port} to load version 2`,
      );
    }
    for (const service of services.splice(0)) {
      const { code, output } = await service.stop();
      assert.equal(code, 0, output);
      assert.match(
        output,
        /Running as spiffe:\/\/spike\.ist\/workload\/orders/,
      );
      assert.match(output, /Database credentials loaded \(version 2\)/);
      assert.ok(!output.includes("Pa55word"), output);
    }
  } finally {
    for (const service of services) await service.stop();
    await cluster.close();
    await Deno.remove(dir, { recursive: true });
  }
});
