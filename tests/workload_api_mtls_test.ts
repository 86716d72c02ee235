// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The SPIFFE Workload API feeding real mTLS servers: a rotation pushed on
// the stream changes the certificate the server presents, in-process and in
// a keeper process started with scoped permissions and SPIFFE_ENDPOINT_SOCKET.
import assert from "node:assert/strict";
import tls from "node:tls";
import { createDevCa, issueSvidDir } from "../scripts/dev_ca.ts";
import { DevWorkloadAgent, svidResponse } from "../scripts/dev_agent.ts";
import { permissionFlags } from "../scripts/permission_flags.ts";
import { waitForPort } from "../scripts/cluster.ts";
import { openWorkloadApiSource } from "../lib/spiffe/workload_api.ts";
import { openFileSvidSource } from "../lib/spiffe/file_source.ts";
import { serveMtls } from "../lib/mtls/server.ts";
import { createMtlsClient } from "../lib/mtls/client.ts";
import { hasRole } from "../lib/spiffe/roles.ts";
import type { X509SvidResponseMessage } from "../lib/spiffe/workload_proto.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The DER of the certificate a server presents on a fresh connection. */
function presentedCert(port: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port,
      rejectUnauthorized: false,
    }, () => {
      const der = new Uint8Array(socket.getPeerCertificate().raw);
      socket.destroy();
      resolve(der);
    });
    socket.on("error", reject);
  });
}

function leafOf(message: X509SvidResponseMessage): Uint8Array {
  return message.svids[0]!.x509Svid;
}

async function waitForCert(port: number, expected: Uint8Array) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const der = await presentedCert(port).catch(() => undefined);
    if (
      der && der.length === expected.length &&
      der.every((b, i) => b === expected[i])
    ) {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("The server never presented the rotated certificate");
}

Deno.test("a rotation pushed on the Workload API stream changes the certificate the mTLS server presents", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spike_wl_mtls_" });
  const ca = await createDevCa("spike.ist");
  const first = await svidResponse(ca, "spiffe://spike.ist/spike/nexus");
  let current = first;
  const agent = await DevWorkloadAgent.start(
    `${dir}/agent.sock`,
    (call) => call.write(current),
  );
  const source = await openWorkloadApiSource({
    endpoint: `unix://${dir}/agent.sock`,
    timeoutMs: 10_000,
  });
  const server = await serveMtls({
    source,
    hostname: "127.0.0.1",
    port: 0,
    maxBodyBytes: 1024,
    authorizePeer: () => true,
    handler: () => Promise.resolve({ status: 200, body: "{}" }),
  });
  try {
    assert.deepEqual(await presentedCert(server.port), leafOf(first));
    current = await svidResponse(ca, "spiffe://spike.ist/spike/nexus");
    agent.push(current);
    await waitForCert(server.port, leafOf(current));
  } finally {
    await server.close();
    source.close();
    agent.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a keeper process takes its identity from the Workload API and serves nexus with it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spike_wl_keeper_" });
  const ca = await createDevCa("spike.ist");
  let current = await svidResponse(ca, "spiffe://spike.ist/spike/keeper/1");
  const socket = `${dir}/agent.sock`;
  const agent = await DevWorkloadAgent.start(
    socket,
    (call) => call.write(current),
  );
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const env = {
    SPIFFE_ENDPOINT_SOCKET: `unix://${socket}`,
    SPIKE_KEEPER_TLS_PORT: `127.0.0.1:${port}`,
    SPIKE_SPIFFE_SOURCE_TIMEOUT: "10s",
    HOME: dir,
  };
  const keeper = new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissionFlags("keeper", env), MAIN, "keeper"],
    env,
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  let alive = true;
  const status = keeper.status.then((s) => {
    alive = false;
    return s;
  });
  await issueSvidDir(ca, "spiffe://spike.ist/spike/nexus", `${dir}/nexus`);
  const nexusSource = await openFileSvidSource(`${dir}/nexus`, {
    watch: false,
  });
  const client = createMtlsClient({
    source: nexusSource,
    authorizeServer: (id) => hasRole(id, "keeper"),
    keepAlive: false,
  });
  try {
    await waitForPort(port, 20_000, () => alive);
    const shard = Array.from({ length: 32 }, (_, i) => i + 1);
    const put = await client.post(
      `https://127.0.0.1:${port}/v1/store/contribute`,
      JSON.stringify({ shard, index: 1 }),
    );
    assert.equal(put.status, 200);
    const got = await client.post(
      `https://127.0.0.1:${port}/v1/store/shard`,
      "{}",
    );
    assert.equal(got.status, 200);
    assert.deepEqual(
      JSON.parse(new TextDecoder().decode(got.body)).shard,
      shard,
    );

    current = await svidResponse(ca, "spiffe://spike.ist/spike/keeper/1");
    agent.push(current);
    await waitForCert(port, leafOf(current));
  } finally {
    client.close();
    nexusSource.close();
    await nexusSource.settled();
    if (alive) keeper.kill("SIGTERM");
    await status;
    agent.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
