// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import {
  caAsSvid,
  caPem,
  eventually,
  issueMaterial,
  materialOf,
  rawExchange,
  sameBytes,
  TestSource,
} from "./mtls_support.ts";
import { createDevCa, type DevCa, issueSvid } from "../scripts/dev_ca.ts";
import type { SpiffeId } from "../lib/spiffe/id.ts";
import {
  type MtlsRequest,
  type MtlsResponse,
  type MtlsServer,
  type RefusedRequest,
  serveMtls,
} from "../lib/mtls/server.ts";
import { createMtlsClient } from "../lib/mtls/client.ts";

const TD = "spike.ist";
const NEXUS = `spiffe://${TD}/spike/nexus`;
const PILOT = `spiffe://${TD}/spike/pilot/role/superuser`;
const WORKLOAD = `spiffe://${TD}/workload/app`;

interface Fixture {
  ca: DevCa;
  server: MtlsServer;
  source: TestSource;
  requests: MtlsRequest[];
  refusals: { reason: string; peer: string | undefined }[];
  refusedRequests: RefusedRequest[];
  url: (target: string) => string;
}

async function startServer(
  options: {
    ca?: DevCa;
    authorizePeer?: (id: SpiffeId) => boolean;
    handler?: (req: MtlsRequest) => Promise<MtlsResponse>;
    maxBodyBytes?: number;
    headersTimeoutMs?: number;
    onRequestRefused?: (info: RefusedRequest) => Promise<void>;
  } = {},
): Promise<Fixture> {
  const ca = options.ca ?? await createDevCa(TD);
  const source = new TestSource(await issueMaterial(ca, NEXUS));
  const requests: MtlsRequest[] = [];
  const refusals: Fixture["refusals"] = [];
  const refusedRequests: RefusedRequest[] = [];
  const handler = options.handler ??
    (() => Promise.resolve({ status: 200, body: "{}" }));
  const server = await serveMtls({
    source,
    authorizePeer: options.authorizePeer ?? (() => true),
    handler: (req) => {
      requests.push({ ...req, body: req.body.slice() });
      return handler(req);
    },
    hostname: "127.0.0.1",
    port: 0,
    maxBodyBytes: options.maxBodyBytes ?? 1024,
    onRefused: (reason, peer) => refusals.push({ reason, peer }),
    onRequestRefused: (info) => {
      refusedRequests.push(info);
      return options.onRequestRefused?.(info);
    },
    ...(options.headersTimeoutMs === undefined
      ? {}
      : { headersTimeoutMs: options.headersTimeoutMs }),
  });
  return {
    ca,
    server,
    source,
    requests,
    refusals,
    refusedRequests,
    url: (target) => `https://127.0.0.1:${server.port}${target}`,
  };
}

function clientFor(ca: DevCa, id: string, trusted: DevCa[] = [ca]) {
  return issueMaterial(ca, id, trusted).then((material) =>
    createMtlsClient({
      source: new TestSource(material),
      authorizeServer: (server) => server.uri === NEXUS,
    })
  );
}

Deno.test("server hands the verified peer ID and the request to the handler", async () => {
  const f = await startServer({
    handler: () =>
      Promise.resolve({
        status: 201,
        headers: { "Content-Type": "application/json", "X-Probe": "yes" },
        body: '{"ok":true}',
      }),
  });
  await using _server = f.server;
  using client = await clientFor(f.ca, PILOT);
  const res = await client.post(
    f.url("/v1/store/secrets?action=get&x=1"),
    '{"path":"a/b"}',
  );
  assert.equal(res.status, 201);
  assert.equal(new TextDecoder().decode(res.body), '{"ok":true}');
  assert.equal(res.headers["x-probe"], "yes");
  assert.equal(res.headers["content-type"], "application/json");
  assert.equal(res.headers["cache-control"], "no-store");
  assert.equal(f.requests.length, 1);
  const req = f.requests[0]!;
  assert.equal(req.peerId.uri, PILOT);
  assert.equal(req.method, "POST");
  assert.equal(req.path, "/v1/store/secrets");
  assert.equal(req.action, "get");
  assert.equal(req.contentType, "application/json");
  assert.equal(new TextDecoder().decode(req.body), '{"path":"a/b"}');
  assert.deepEqual(f.refusals, []);
});

Deno.test("server keeps a Cache-Control header the handler set and an empty action", async () => {
  const f = await startServer({
    handler: () =>
      Promise.resolve({
        status: 200,
        headers: { "cache-control": "private, max-age=5" },
      }),
  });
  await using _server = f.server;
  using client = await clientFor(f.ca, PILOT);
  const res = await client.post(f.url("/v1/keeper/shard"), new Uint8Array(), {
    contentType: "application/octet-stream",
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers["cache-control"], "private, max-age=5");
  assert.equal(res.body.length, 0);
  assert.equal(f.requests[0]!.action, "");
  assert.equal(f.requests[0]!.contentType, "application/octet-stream");
});

Deno.test("server zeroes the request body once the handler settles", async () => {
  let held: Uint8Array | undefined;
  const f = await startServer({
    handler: (req) => {
      held = req.body;
      return Promise.resolve({ status: 200 });
    },
  });
  await using _server = f.server;
  using client = await clientFor(f.ca, PILOT);
  await client.post(f.url("/v1/keeper/contribute"), "secret-shard-bytes");
  assert.ok(held !== undefined && held.length === 18);
  assert.ok(held.every((b) => b === 0));
  assert.equal(
    new TextDecoder().decode(f.requests[0]!.body),
    "secret-shard-bytes",
  );
});

Deno.test("server sends a byte body intact and zeroes it afterwards", async () => {
  const shard = crypto.getRandomValues(new Uint8Array(32));
  const expected = shard.slice();
  const f = await startServer({
    handler: () =>
      Promise.resolve({
        status: 200,
        headers: { "Content-Type": "application/octet-stream" },
        body: shard,
      }),
  });
  await using _server = f.server;
  using client = await clientFor(f.ca, PILOT);
  const res = await client.post(f.url("/v1/keeper/shard"), "{}");
  assert.deepEqual(res.body, expected);
  await eventually(() => shard.every((b) => b === 0));
  assert.ok(shard.every((b) => b === 0));
});

Deno.test("server refuses a client that presents no certificate", async () => {
  const f = await startServer();
  await using _server = f.server;
  const outcome = await rawExchange(f.server.port, undefined, [caPem(f.ca)]);
  assert.equal(outcome.response, "");
  assert.equal(f.requests.length, 0);
  await eventually(() => f.refusals.length > 0);
  assert.match(f.refusals[0]?.reason ?? "", /^TLS handshake failed: /);
  assert.match(f.refusals[0]?.peer ?? "", /^127\.0\.0\.1:\d+$/);
});

Deno.test("server refuses a client certificate from a foreign CA", async () => {
  const f = await startServer();
  await using _server = f.server;
  const foreign = await createDevCa(TD);
  const svid = await issueSvid(foreign, PILOT);
  const outcome = await rawExchange(
    f.server.port,
    { cert: svid.certPem, key: svid.keyPem },
    [caPem(f.ca)],
  );
  assert.equal(outcome.response, "");
  assert.equal(f.requests.length, 0);
  await eventually(() => f.refusals.length > 0);
  assert.ok(f.refusals.length > 0, "onRefused was not called");
});

Deno.test("server refuses the trust bundle's own CA certificate used as a client SVID", async () => {
  const f = await startServer();
  await using _server = f.server;
  const svid = await caAsSvid(f.ca);
  const outcome = await rawExchange(
    f.server.port,
    { cert: svid.certPem, key: svid.keyPem },
    [caPem(f.ca)],
  );
  assert.equal(outcome.response, "");
  assert.equal(f.requests.length, 0);
  await eventually(() => f.refusals.length > 0);
  assert.match(f.refusals[0]?.reason ?? "", /SVID rejected|TLS handshake/);
});

Deno.test("server refuses a client whose SVID is a CA certificate", async () => {
  const f = await startServer();
  await using _server = f.server;
  const svid = await issueSvid(f.ca, PILOT, { asCa: true });
  const outcome = await rawExchange(
    f.server.port,
    { cert: svid.certPem, key: svid.keyPem },
    [caPem(f.ca)],
  );
  assert.equal(outcome.response, "");
  assert.equal(f.requests.length, 0);
  await eventually(() => f.refusals.length > 0);
  assert.ok(f.refusals.length > 0, "onRefused was not called");
});

Deno.test("server refuses a client the authorizer rejects before any handler runs", async () => {
  const f = await startServer({
    authorizePeer: (id) => id.path === "/spike/nexus",
  });
  await using _server = f.server;
  const svid = await issueSvid(f.ca, WORKLOAD);
  const outcome = await rawExchange(
    f.server.port,
    { cert: svid.certPem, key: svid.keyPem },
    [caPem(f.ca)],
  );
  assert.equal(outcome.response, "");
  await eventually(() => f.refusals.length > 0);
  assert.equal(f.requests.length, 0);
  assert.deepEqual(f.refusals, [{
    reason: "Client SPIFFE ID is not authorized",
    peer: WORKLOAD,
  }]);
});

Deno.test("server accepts a body exactly at the limit", async () => {
  const f = await startServer({ maxBodyBytes: 100 });
  await using _server = f.server;
  using client = await clientFor(f.ca, PILOT);
  const res = await client.post(f.url("/v1/x"), new Uint8Array(100).fill(7));
  assert.equal(res.status, 200);
  assert.equal(f.requests[0]!.body.length, 100);
  assert.deepEqual(f.refusedRequests, []);
});

Deno.test("server answers 413 to a declared Content-Length over the limit", async () => {
  const f = await startServer({ maxBodyBytes: 1024 });
  await using _server = f.server;
  using client = await clientFor(f.ca, PILOT);
  const res = await client.post(
    f.url("/v1/x"),
    new Uint8Array(4 * 1024 * 1024),
  );
  assert.equal(res.status, 413);
  assert.equal(
    new TextDecoder().decode(res.body),
    '{"err":"api_entity_too_large"}',
  );
  assert.equal(res.headers["cache-control"], "no-store");
  assert.equal(f.requests.length, 0);
});

Deno.test("server tells onRequestRefused of a 413 with the caller, path and action", async () => {
  const f = await startServer({ maxBodyBytes: 1024 });
  await using _server = f.server;
  using client = await clientFor(f.ca, PILOT);
  const res = await client.post(
    f.url("/v1/store/secrets?action=get"),
    new Uint8Array(2048).fill(0x41),
  );
  assert.equal(res.status, 413);
  assert.equal(f.refusedRequests.length, 1);
  const { peerId, ...rest } = f.refusedRequests[0]!;
  assert.equal(peerId.uri, PILOT);
  assert.deepEqual(rest, {
    method: "POST",
    path: "/v1/store/secrets",
    action: "get",
    status: 413,
    code: "api_entity_too_large",
  });
  assert.equal(f.requests.length, 0);
});

Deno.test("server answers a refused request only once onRequestRefused settles", async () => {
  // An audit line is written asynchronously; the client must not hear back
  // before it is.
  let settled = false;
  const f = await startServer({
    maxBodyBytes: 1024,
    onRequestRefused: async () => {
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      settled = true;
    },
  });
  await using _server = f.server;
  using client = await clientFor(f.ca, PILOT);
  const res = await client.post(
    f.url("/v1/store/secrets?action=get"),
    new Uint8Array(2048).fill(0x41),
  );
  assert.equal(res.status, 413);
  assert.ok(settled, "answered before the hook settled");
});

Deno.test("server tells onRequestRefused of a 400 for an unparsable target", async () => {
  const f = await startServer();
  await using _server = f.server;
  const svid = await issueSvid(f.ca, PILOT);
  const outcome = await rawExchange(
    f.server.port,
    { cert: svid.certPem, key: svid.keyPem },
    [caPem(f.ca)],
    "POST * HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
  );
  assert.match(outcome.response, /^HTTP\/1\.1 400 /);
  assert.equal(f.requests.length, 0);
  assert.equal(f.refusedRequests.length, 1);
  const { peerId, ...rest } = f.refusedRequests[0]!;
  assert.equal(peerId.uri, PILOT);
  assert.deepEqual(rest, {
    method: "POST",
    path: "",
    action: "",
    status: 400,
    code: "api_bad_request",
  });
});

Deno.test("server answers 413 to a chunked body that grows over the limit", async () => {
  const f = await startServer({ maxBodyBytes: 1024 });
  await using _server = f.server;
  const svid = await issueSvid(f.ca, PILOT);
  const chunk = "x".repeat(600);
  const body = `${chunk.length.toString(16)}\r\n${chunk}\r\n`.repeat(4) +
    "0\r\n\r\n";
  const outcome = await rawExchange(
    f.server.port,
    { cert: svid.certPem, key: svid.keyPem },
    [caPem(f.ca)],
    "POST /v1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
      body,
  );
  assert.match(outcome.response, /^HTTP\/1\.1 413 /);
  assert.ok(outcome.response.endsWith('{"err":"api_entity_too_large"}'));
  assert.equal(f.requests.length, 0);
  assert.deepEqual(
    f.refusedRequests.map((r) => [r.peerId.uri, r.path, r.status]),
    [[PILOT, "/v1/x", 413]],
  );
});

Deno.test("server drops a client that never finishes its headers", async () => {
  const f = await startServer({ headersTimeoutMs: 300 });
  await using _server = f.server;
  const svid = await issueSvid(f.ca, PILOT);
  const outcome = await rawExchange(
    f.server.port,
    { cert: svid.certPem, key: svid.keyPem },
    [caPem(f.ca)],
    "POST /v1/x HTTP/1.1\r\nHost: x\r\n",
  );
  assert.match(outcome.response, /^HTTP\/1\.1 408 /);
  assert.equal(f.requests.length, 0);
});

Deno.test("server answers a throwing handler with a bare 500", async () => {
  const f = await startServer({
    handler: () =>
      Promise.reject(new Error("Row 42 of table secrets is locked")),
  });
  await using _server = f.server;
  using client = await clientFor(f.ca, PILOT);
  const res = await client.post(f.url("/v1/x"), "{}");
  assert.equal(res.status, 500);
  assert.ok(!new TextDecoder().decode(res.body).includes("Row 42"));
  assert.equal(
    new TextDecoder().decode(res.body),
    '{"err":"api_internal_error"}',
  );
  assert.equal(res.headers["cache-control"], "no-store");
});

Deno.test("server presents the rotated certificate and trusts the rotated bundle", async () => {
  const f = await startServer();
  await using _server = f.server;
  const first = f.source.current().chain[0]!;
  const before = await rawExchange(f.server.port, undefined, [caPem(f.ca)]);
  assert.ok(sameBytes(before.serverCert, first));

  // The new SVID comes from a second CA of the same trust domain.
  const ca2 = await createDevCa(TD);
  const rotated = materialOf(NEXUS, await issueSvid(ca2, NEXUS), [f.ca, ca2]);
  const client2 = await issueSvid(ca2, PILOT);
  const refusedBefore = await rawExchange(
    f.server.port,
    { cert: client2.certPem, key: client2.keyPem },
    [caPem(f.ca)],
  );
  assert.equal(refusedBefore.response, "");

  f.source.rotate(rotated);
  const after = await rawExchange(
    f.server.port,
    { cert: client2.certPem, key: client2.keyPem },
    [caPem(f.ca), caPem(ca2)],
  );
  assert.ok(sameBytes(after.serverCert, rotated.chain[0]!));
  assert.ok(!sameBytes(after.serverCert, first));
  assert.match(after.response, /^HTTP\/1\.1 200 /);
  assert.equal(f.requests.at(-1)?.peerId.uri, PILOT);
});

Deno.test("server close stops following rotations", async () => {
  const f = await startServer();
  assert.equal(f.source.listenerCount, 1);
  await f.server.close();
  assert.equal(f.source.listenerCount, 0);
});

Deno.test("server rejects a port already in use", async () => {
  const f = await startServer();
  await using _server = f.server;
  await assert.rejects(
    serveMtls({
      source: f.source,
      authorizePeer: () => true,
      handler: () => Promise.resolve({ status: 200 }),
      hostname: "127.0.0.1",
      port: f.server.port,
      maxBodyBytes: 10,
    }),
  );
  assert.equal(f.source.listenerCount, 1);
});
