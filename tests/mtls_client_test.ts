// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import https from "node:https";
import net from "node:net";
import tls, { type TLSSocket } from "node:tls";
import {
  caAsSvid,
  caPem,
  eventually,
  issueMaterial,
  materialOf,
  sameBytes,
  TestSource,
} from "./mtls_support.ts";
import {
  createDevCa,
  type DevCa,
  issueIntermediateCa,
  issueSvid,
} from "../scripts/dev_ca.ts";
import { type MtlsRequest, serveMtls } from "../lib/mtls/server.ts";
import {
  createMtlsClient,
  MtlsClientError,
  type MtlsClientOptions,
} from "../lib/mtls/client.ts";
import type { X509Material } from "../lib/spiffe/source.ts";

const TD = "spike.ist";
const NEXUS = `spiffe://${TD}/spike/nexus`;
const KEEPER = `spiffe://${TD}/spike/keeper`;
const PILOT = `spiffe://${TD}/spike/pilot/role/superuser`;

/** An mTLS server with `material`, recording the requests its handler sees. */
async function serverWith(
  material: X509Material,
  handler: (req: MtlsRequest) => Promise<void> = () => Promise.resolve(),
) {
  const requests: MtlsRequest[] = [];
  const server = await serveMtls({
    source: new TestSource(material),
    authorizePeer: () => true,
    handler: async (req) => {
      requests.push(req);
      await handler(req);
      return { status: 200, body: `{"peer":"${req.peerId.uri}"}` };
    },
    hostname: "127.0.0.1",
    port: 0,
    maxBodyBytes: 1024,
  });
  return { server, requests, url: `https://127.0.0.1:${server.port}/v1/x` };
}

async function clientFor(
  ca: DevCa,
  overrides: Partial<MtlsClientOptions> = {},
) {
  return createMtlsClient({
    source: new TestSource(await issueMaterial(ca, PILOT)),
    authorizeServer: (id) => id.uri === NEXUS,
    ...overrides,
  });
}

async function rejection(promise: Promise<unknown>): Promise<MtlsClientError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof MtlsClientError, `unexpected ${e}`);
    assert.equal(e.name, "MtlsClientError");
    return e;
  }
  assert.fail("the request succeeded");
}

Deno.test("client talks to an authorized server over repeated requests", async () => {
  const ca = await createDevCa(TD);
  const s = await serverWith(await issueMaterial(ca, NEXUS));
  await using _server = s.server;
  using client = await clientFor(ca);
  for (let i = 0; i < 3; i++) {
    const res = await client.post(s.url, "{}");
    assert.equal(res.status, 200);
    assert.equal(new TextDecoder().decode(res.body), `{"peer":"${PILOT}"}`);
  }
  assert.equal(s.requests.length, 3);
});

Deno.test("client and server accept SVIDs issued by an intermediate CA", async () => {
  const root = await createDevCa(TD);
  const withIntermediate = async (id: string) => {
    const intermediate = await issueIntermediateCa(root);
    const material = materialOf(id, await issueSvid(intermediate, id), [root]);
    return {
      ...material,
      chain: [...material.chain, new Uint8Array(intermediate.cert.rawData)],
    };
  };
  const s = await serverWith(await withIntermediate(NEXUS));
  await using _server = s.server;
  using client = createMtlsClient({
    source: new TestSource(await withIntermediate(PILOT)),
    authorizeServer: (id) => id.uri === NEXUS,
  });
  const res = await client.post(s.url, "{}");
  assert.equal(res.status, 200);
  assert.equal(s.requests[0]?.peerId.uri, PILOT);
});

Deno.test("client refuses a server with the wrong SPIFFE ID and sends it nothing", async () => {
  const ca = await createDevCa(TD);
  const keeper = await issueSvid(ca, KEEPER);
  // A raw TLS server, so the test sees every byte the client sends.
  let received = 0;
  let handshakes = 0;
  const server = tls.createServer({
    requestCert: true,
    rejectUnauthorized: true,
    ca: [caPem(ca)],
    cert: keeper.certPem,
    key: Buffer.from(keeper.keyPem),
  }, (socket) => {
    handshakes++;
    socket.on("data", (chunk: Uint8Array) => received += chunk.byteLength);
    socket.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    using client = await clientFor(ca);
    const error = await rejection(
      client.post(`https://127.0.0.1:${port}/v1/x`, '{"secret":"x"}'),
    );
    assert.equal(error.kind, "unauthorized-server");
    assert.equal(error.requestSent, false);
    assert.match(error.message, /spike\/keeper is not authorized/);
    await eventually(() => handshakes > 0);
    assert.equal(handshakes, 1);
    assert.equal(received, 0);
  } finally {
    await new Promise((r) => server.close(r));
  }
});

Deno.test("client refuses a server whose certificate comes from a foreign CA", async () => {
  const ca = await createDevCa(TD);
  const foreign = await createDevCa(TD);
  const s = await serverWith(await issueMaterial(foreign, NEXUS));
  await using _server = s.server;
  using client = await clientFor(ca);
  const error = await rejection(client.post(s.url, "{}"));
  assert.equal(error.kind, "tls");
  assert.equal(s.requests.length, 0);
});

Deno.test("client refuses a server presenting the bundle CA itself as its SVID", async () => {
  const ca = await createDevCa(TD);
  const s = await serverWith(materialOf(NEXUS, await caAsSvid(ca), [ca]));
  await using _server = s.server;
  using client = await clientFor(ca, { authorizeServer: () => true });
  const error = await rejection(client.post(s.url, "{}"));
  assert.equal(error.kind, "unauthorized-server");
  assert.match(error.message, /must not be a CA/);
  assert.equal(s.requests.length, 0);
});

Deno.test("client reports a closed port as unreachable", async () => {
  const ca = await createDevCa(TD);
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  using client = await clientFor(ca);
  const error = await rejection(
    client.post(`https://127.0.0.1:${port}/v1/x`, "{}"),
  );
  assert.equal(error.kind, "unreachable");
  assert.equal(error.requestSent, false);
});

Deno.test("client gives up on a server that does not answer in time", async () => {
  const ca = await createDevCa(TD);
  const { promise: released, resolve: release } = Promise.withResolvers<
    void
  >();
  const s = await serverWith(await issueMaterial(ca, NEXUS), () => released);
  await using _server = s.server;
  using client = await clientFor(ca, { timeoutMs: 60_000 });
  const error = await rejection(
    client.post(s.url, "{}", { timeoutMs: 200 }),
  );
  assert.equal(error.kind, "timeout");
  // The server has the request: a caller must not assume it was not acted on.
  assert.equal(error.requestSent, true);
  assert.equal(s.requests.length, 1);
  release();
});

Deno.test("client reports a handshake that never completes as not sent", async () => {
  const ca = await createDevCa(TD);
  const held: net.Socket[] = [];
  const hole = net.createServer((socket) => held.push(socket));
  await new Promise<void>((r) => hole.listen(0, "127.0.0.1", r));
  const port = (hole.address() as net.AddressInfo).port;
  try {
    using client = await clientFor(ca);
    const error = await rejection(
      client.post(`https://127.0.0.1:${port}/v1/x`, "{}", { timeoutMs: 200 }),
    );
    assert.equal(error.kind, "timeout");
    assert.equal(error.requestSent, false);
  } finally {
    for (const socket of held) socket.destroy();
    await new Promise((r) => hole.close(r));
  }
});

Deno.test("client rejects a URL that is not https", async () => {
  const ca = await createDevCa(TD);
  using client = await clientFor(ca);
  await assert.rejects(client.post("http://127.0.0.1:1/v1/x", "{}"), TypeError);
});

Deno.test("client presents its rotated certificate", async () => {
  const ca = await createDevCa(TD);
  const ca2 = await createDevCa(TD);
  const serverSvid = await issueSvid(ca, NEXUS);
  // A plain node:https server, so the test sees the exact client certificate.
  const seen: Uint8Array[] = [];
  const server = https.createServer({
    requestCert: true,
    rejectUnauthorized: true,
    ca: [caPem(ca), caPem(ca2)],
    cert: serverSvid.certPem,
    key: Buffer.from(serverSvid.keyPem),
  }, (req, res) => {
    const raw = (req.socket as TLSSocket).getPeerCertificate().raw;
    seen.push(new Uint8Array(raw));
    req.resume();
    req.on("end", () => res.end("ok"));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `https://127.0.0.1:${
    (server.address() as net.AddressInfo).port
  }/`;
  try {
    const first = await issueMaterial(ca, PILOT);
    const source = new TestSource(first);
    using client = createMtlsClient({
      source,
      authorizeServer: (id) => id.uri === NEXUS,
    });
    assert.equal((await client.post(url, "{}")).status, 200);
    assert.ok(sameBytes(seen[0], first.chain[0]!));

    // The rotated SVID comes from a second CA of the same trust domain.
    const rotated = materialOf(PILOT, await issueSvid(ca2, PILOT), [ca, ca2]);
    source.rotate(rotated);
    assert.equal((await client.post(url, "{}")).status, 200);
    assert.ok(sameBytes(seen[1], rotated.chain[0]!));
    client.close();
    assert.equal(source.listenerCount, 0);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

Deno.test("client reads the timeout from SPIKE_HTTP_CLIENT_TIMEOUT", async () => {
  const ca = await createDevCa(TD);
  const { promise: released, resolve: release } = Promise.withResolvers<
    void
  >();
  const s = await serverWith(await issueMaterial(ca, NEXUS), () => released);
  await using _server = s.server;
  Deno.env.set("SPIKE_HTTP_CLIENT_TIMEOUT", "150ms");
  try {
    using client = await clientFor(ca);
    const error = await rejection(client.post(s.url, "{}"));
    assert.equal(error.kind, "timeout");
    assert.match(error.message, /150 ms/);
  } finally {
    Deno.env.delete("SPIKE_HTTP_CLIENT_TIMEOUT");
    release();
  }
});

/**
 * An HTTPS server with a nexus SVID that answers every request with
 * `bodyBytes` of zeros, declaring the length or not, and counts what it
 * managed to send in all before clients hung up.
 */
async function bulkServer(
  ca: DevCa,
  bodyBytes: number,
  declareLength: boolean,
) {
  const svid = await issueSvid(ca, NEXUS);
  let sent = 0;
  const server = https.createServer({
    cert: svid.certPem,
    key: svid.keyPem,
  }, (req, res) => {
    req.resume();
    res.writeHead(
      200,
      declareLength ? { "content-length": String(bodyBytes) } : {},
    );
    const chunk = new Uint8Array(64 * 1024);
    let written = 0;
    const pump = () => {
      while (written < bodyBytes && !res.destroyed) {
        const n = Math.min(chunk.length, bodyBytes - written);
        written += n;
        sent += n;
        if (!res.write(chunk.subarray(0, n))) {
          res.once("drain", pump);
          return;
        }
      }
      if (written >= bodyBytes) res.end();
    };
    res.on("close", () => res.removeAllListeners("drain"));
    pump();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}/v1/store/shard`,
    sent: () => sent,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

Deno.test("client fails a call whose answer is over its size limit, declared or streamed", async () => {
  const ca = await createDevCa(TD);
  for (const declareLength of [true, false]) {
    const big = await bulkServer(ca, 256 * 1024 * 1024, declareLength);
    try {
      using client = await clientFor(ca, { maxResponseBytes: 4096 });
      const error = await rejection(client.post(big.url, "{}"));
      assert.equal(error.kind, "too-large");
      assert.match(
        error.message,
        /^Response from https:\/\/127\.0\.0\.1:\d+ is larger than 4096 bytes$/,
      );
      // The connection is gone: the server cannot push the rest.
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(
        big.sent() < 64 * 1024 * 1024,
        `the server sent ${big.sent()} bytes`,
      );
    } finally {
      await big.close();
    }
  }
});

Deno.test("a response of exactly the limit passes; a per-call limit overrides the client's", async () => {
  const ca = await createDevCa(TD);
  for (const declareLength of [true, false]) {
    const exact = await bulkServer(ca, 4096, declareLength);
    try {
      using client = await clientFor(ca, { maxResponseBytes: 4096 });
      const res = await client.post(exact.url, "{}");
      assert.equal(res.body.byteLength, 4096);
      const error = await rejection(
        client.post(exact.url, "{}", { maxResponseBytes: 4095 }),
      );
      assert.equal(error.kind, "too-large");
      using roomy = await clientFor(ca, { maxResponseBytes: 100 });
      const wide = await roomy.post(exact.url, "{}", {
        maxResponseBytes: 8192,
      });
      assert.equal(wide.body.byteLength, 4096);
    } finally {
      await exact.close();
    }
  }
});
