// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Streamed responses over mTLS (a backup): the server sends a body it
// produces as it goes, at the client's pace; the client takes it chunk by
// chunk; a stream that fails mid-way reaches the client as an error, never
// as a short success; a slow sink holds the server back.
import assert from "node:assert/strict";
import { issueMaterial, TestSource } from "./mtls_support.ts";
import { createDevCa, issueSvid } from "../scripts/dev_ca.ts";
import { type MtlsResponse, serveMtls } from "../lib/mtls/server.ts";
import { createMtlsClient, MtlsClientError } from "../lib/mtls/client.ts";

const TD = "spike.ist";

async function setup(respond: () => MtlsResponse) {
  const ca = await createDevCa(TD);
  const server = await serveMtls({
    source: new TestSource(
      await issueMaterial(ca, `spiffe://${TD}/spike/nexus`),
    ),
    authorizePeer: () => true,
    handler: () => Promise.resolve(respond()),
    hostname: "127.0.0.1",
    port: 0,
    maxBodyBytes: 1024,
  });
  const client = createMtlsClient({
    source: new TestSource(
      await issueMaterial(ca, `spiffe://${TD}/spike/pilot/role/superuser`),
    ),
    authorizeServer: () => true,
    timeoutMs: 5_000,
  });
  return {
    url: `https://127.0.0.1:${server.port}/v1/operator/backup`,
    client,
    async [Symbol.asyncDispose]() {
      client.close();
      await server.close();
    },
  };
}

Deno.test("a streamed response arrives whole, chunk by chunk, into the sink", async () => {
  await using s = await setup(() => ({
    status: 200,
    headers: { "content-type": "application/octet-stream" },
    stream: (async function* () {
      for (let i = 0; i < 512; i++) {
        yield new Uint8Array(64 * 1024).fill(i % 64);
      }
    })(),
  }));
  const seen = new Set<number>();
  let total = 0;
  let calls = 0;
  const result = await s.client.post(s.url, "{}", {
    sink: async (chunk) => {
      calls++;
      for (const b of new Set(chunk)) seen.add(b);
      total += chunk.length;
      await new Promise((r) => setTimeout(r, 1));
    },
  });
  assert.equal(result.status, 200);
  assert.equal(result.body.length, 0);
  assert.equal(total, 512 * 64 * 1024);
  assert.ok(calls > 1);
  assert.deepEqual(
    [...seen].sort((a, b) => a - b),
    Array.from({ length: 64 }, (_, i) => i),
  );
});

Deno.test("a slow reader holds a streamed response back: nexus never produces far ahead of it", async () => {
  const ca = await createDevCa(TD);
  const dir = await Deno.makeTempDir();
  const pilot = await issueSvid(
    ca,
    `spiffe://${TD}/spike/pilot/role/superuser`,
  );
  await Deno.writeTextFile(`${dir}/cert.pem`, pilot.certPem);
  await Deno.writeTextFile(`${dir}/key.pem`, pilot.keyPem);
  let produced = 0;
  const server = await serveMtls({
    source: new TestSource(
      await issueMaterial(ca, `spiffe://${TD}/spike/nexus`),
    ),
    authorizePeer: () => true,
    handler: () =>
      Promise.resolve({
        status: 200,
        stream: (async function* () {
          for (let i = 0; i < 512; i++) {
            produced++;
            yield new Uint8Array(64 * 1024);
          }
        })(),
      }),
    hostname: "127.0.0.1",
    port: 0,
    maxBodyBytes: 1024,
  });
  // openssl, not Deno's node:https client (which reads ahead of its
  // consumer whatever it is told): it stops reading the socket while its
  // standard output is not read.
  const client = new Deno.Command("openssl", {
    args: [
      "s_client",
      "-connect",
      `127.0.0.1:${server.port}`,
      "-cert",
      `${dir}/cert.pem`,
      "-key",
      `${dir}/key.pem`,
      "-quiet",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const writer = client.stdin.getWriter();
    await writer.write(
      new TextEncoder().encode(
        "POST /v1/operator/backup HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
      ),
    );
    await new Promise((r) => setTimeout(r, 2_000));
    const during = produced;
    let total = 0;
    for await (const chunk of client.stdout) {
      total += chunk.length;
      if (total >= 512 * 64 * 1024) break;
    }
    assert.ok(during > 0 && during < 256, `${during} of 512 chunks made`);
    assert.ok(total >= 512 * 64 * 1024);
    await writer.close().catch(() => {});
  } finally {
    client.kill();
    await client.status;
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a stream that fails mid-way reaches the client as a broken answer, never as a short success", async () => {
  await using s = await setup(() => ({
    status: 200,
    stream: (async function* () {
      yield new Uint8Array(100_000);
      throw new Error("Snapshot read failed");
    })(),
  }));
  let total = 0;
  await assert.rejects(
    s.client.post(s.url, "{}", { sink: (c) => void (total += c.length) }),
    (e: unknown) => e instanceof MtlsClientError && e.kind === "unreachable",
  );
  assert.ok(total <= 100_000);
});

Deno.test("a sink that fails ends the call with its own error; an error answer is read whole", async () => {
  await using s = await setup(() => ({
    status: 200,
    stream: (async function* () {
      for (;;) yield new Uint8Array(16 * 1024);
    })(),
  }));
  await assert.rejects(
    s.client.post(s.url, "{}", {
      sink: () => Promise.reject(new Error("Disk full")),
    }),
    /Disk full/,
  );
  await using refused = await setup(() => ({
    status: 401,
    body: '{"err":"access_unauthorized"}',
  }));
  const answer = await refused.client.post(refused.url, "{}", {
    sink: () => assert.fail("an error answer goes to the body"),
  });
  assert.equal(answer.status, 401);
  assert.equal(
    new TextDecoder().decode(answer.body),
    '{"err":"access_unauthorized"}',
  );
});
