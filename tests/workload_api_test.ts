// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { DevWorkloadAgent } from "../scripts/dev_agent.ts";
import {
  createDevCa,
  type DevCa,
  issueSvid,
  issueSvidDir,
} from "../scripts/dev_ca.ts";
import { isAllZero } from "../lib/crypto/zero.ts";
import type { FileSvidSource } from "../lib/spiffe/file_source.ts";
import { openSvidSource } from "../lib/spiffe/open_source.ts";
import type { X509Material } from "../lib/spiffe/source.ts";
import {
  FETCH_X509_SVID_PATH,
  openWorkloadApiSource,
  WorkloadApiError,
} from "../lib/spiffe/workload_api.ts";
import { type X509SvidResponseMessage } from "../lib/spiffe/workload_proto.ts";
import { withEnv } from "./env_support.ts";

interface Fixture {
  ca: DevCa;
  federated: DevCa;
  dir: string;
  socket: string;
}

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "spike_wl_" });
  try {
    await fn({
      ca: await createDevCa("spike.ist"),
      federated: await createDevCa("example.org"),
      dir,
      socket: `${dir}/agent.sock`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

interface Issued {
  certDer: Uint8Array;
  keyDer: Uint8Array;
  message: X509SvidResponseMessage;
}

async function issue(f: Fixture, id: string): Promise<Issued> {
  const svid = await issueSvid(f.ca, id);
  const caDer = new Uint8Array(f.ca.cert.rawData);
  return {
    certDer: svid.certDer,
    keyDer: svid.keyDer,
    message: {
      // The chain carries the CA after the leaf, to exercise DER splitting.
      svids: [{
        spiffeId: id,
        x509Svid: concat(svid.certDer, caDer),
        x509SvidKey: svid.keyDer.slice(),
        bundle: caDer,
        hint: "",
      }],
      crl: [],
      federatedBundles: new Map([[
        "spiffe://example.org",
        new Uint8Array(f.federated.cert.rawData),
      ]]),
    },
  };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

function derFromPem(pem: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(pem);
  const lines = text.trim().split("\n");
  assert.equal(lines[0], "-----BEGIN PRIVATE KEY-----");
  assert.equal(lines.at(-1), "-----END PRIVATE KEY-----");
  assert.ok(lines.slice(1, -1).every((l) => l.length <= 64));
  return Uint8Array.from(
    atob(lines.slice(1, -1).join("")),
    (c) => c.charCodeAt(0),
  );
}

function nextUpdate(
  source: { onUpdate: (l: (m: X509Material) => void) => () => void },
): Promise<X509Material> {
  return new Promise((resolve) => {
    const off = source.onUpdate((m) => {
      off();
      resolve(m);
    });
  });
}

const FAST = { backoffBaseMs: 20, backoffMaxMs: 100 };

Deno.test("workload API source delivers the first SVID with its key and bundles", async () => {
  await withFixture(async (f) => {
    const issued = await issue(f, "spiffe://spike.ist/spike/nexus");
    const agent = await DevWorkloadAgent.start(
      f.socket,
      (call) => call.write(issued.message),
    );
    try {
      const source = await openWorkloadApiSource({
        endpoint: `unix://${f.socket}`,
        timeoutMs: 10_000,
        ...FAST,
      });
      try {
        const m = source.current();
        assert.equal(m.id.uri, "spiffe://spike.ist/spike/nexus");
        assert.equal(m.id.trustDomain, "spike.ist");
        assert.equal(m.chain.length, 2);
        assert.deepEqual(m.chain[0], issued.certDer);
        assert.deepEqual(m.chain[1], new Uint8Array(f.ca.cert.rawData));
        assert.deepEqual(derFromPem(m.keyPem), issued.keyDer);
        assert.deepEqual([...m.bundles.keys()].sort(), [
          "example.org",
          "spike.ist",
        ]);
        assert.deepEqual(m.bundles.get("spike.ist"), [
          new Uint8Array(f.ca.cert.rawData),
        ]);
        assert.deepEqual(m.bundles.get("example.org"), [
          new Uint8Array(f.federated.cert.rawData),
        ]);
        // The key the server sent stays intact on the server side.
        assert.ok(!isAllZero(issued.keyDer));
      } finally {
        source.close();
      }
      assert.ok(isAllZero(source.current().keyPem), "close() zeroes the key");
    } finally {
      agent.stop();
    }
  });
});

Deno.test("workload API source follows a rotation pushed on the stream", async () => {
  await withFixture(async (f) => {
    const first = await issue(f, "spiffe://spike.ist/spike/keeper/1");
    const second = await issue(f, "spiffe://spike.ist/spike/keeper/2");
    const agent = await DevWorkloadAgent.start(
      f.socket,
      (call) => call.write(first.message),
    );
    try {
      using source = await openWorkloadApiSource({
        endpoint: `unix://${f.socket}`,
        timeoutMs: 10_000,
        ...FAST,
      });
      const before = source.current();
      assert.equal(before.id.path, "/spike/keeper/1");
      const updated = nextUpdate(source);
      agent.push(second.message);
      const m = await updated;
      assert.equal(m.id.path, "/spike/keeper/2");
      assert.equal(source.current(), m);
      assert.deepEqual(m.chain[0], second.certDer);
      assert.deepEqual(derFromPem(m.keyPem), second.keyDer);
      assert.ok(isAllZero(before.keyPem), "the replaced key is zeroed");
    } finally {
      agent.stop();
    }
  });
});

Deno.test("workload API source keeps its SVID when an update is invalid", async () => {
  await withFixture(async (f) => {
    const first = await issue(f, "spiffe://spike.ist/a");
    const second = await issue(f, "spiffe://spike.ist/b");
    const agent = await DevWorkloadAgent.start(
      f.socket,
      (call) => call.write(first.message),
    );
    try {
      using source = await openWorkloadApiSource({
        endpoint: `unix://${f.socket}`,
        timeoutMs: 10_000,
        ...FAST,
      });
      const seen: string[] = [];
      source.onUpdate((m) => seen.push(m.id.path));
      const updated = nextUpdate(source);
      agent.push({ svids: [], crl: [], federatedBundles: new Map() });
      agent.push({
        ...second.message,
        svids: [{ ...second.message.svids[0]!, spiffeId: "spiffe://Bad/x" }],
      });
      agent.push({
        ...second.message,
        svids: [{
          ...second.message.svids[0]!,
          spiffeId: "spiffe://spike.ist/c",
        }],
      });
      agent.push({
        ...second.message,
        svids: [{ ...second.message.svids[0]!, x509SvidKey: first.keyDer }],
      });
      agent.push({
        ...second.message,
        svids: [{
          ...second.message.svids[0]!,
          bundle: new Uint8Array(f.federated.cert.rawData),
        }],
      });
      agent.push(second.message);
      await updated;
      // Only the valid update reached the listeners, on the same stream.
      assert.deepEqual(seen, ["/b"]);
      assert.equal(agent.callCount, 1);
    } finally {
      agent.stop();
    }
  });
});

Deno.test("workload API source reconnects when the agent restarts on the same socket", async () => {
  await withFixture(async (f) => {
    const first = await issue(f, "spiffe://spike.ist/before");
    const second = await issue(f, "spiffe://spike.ist/after");
    let agent = await DevWorkloadAgent.start(
      f.socket,
      (call) => call.write(first.message),
    );
    try {
      using source = await openWorkloadApiSource({
        endpoint: `unix://${f.socket}`,
        timeoutMs: 10_000,
        ...FAST,
      });
      assert.equal(source.current().id.path, "/before");
      const updated = nextUpdate(source);
      agent.stop();
      await Deno.remove(f.socket).catch(() => {});
      agent = await DevWorkloadAgent.start(
        f.socket,
        (call) => call.write(second.message),
      );
      const m = await updated;
      assert.equal(m.id.path, "/after");
      assert.equal(source.current().id.path, "/after");
    } finally {
      agent.stop();
    }
  });
});

Deno.test("workload API source retries PermissionDenied until the agent knows the workload", async () => {
  await withFixture(async (f) => {
    const issued = await issue(f, "spiffe://spike.ist/late");
    const agent = await DevWorkloadAgent.start(f.socket, (call, a) => {
      if (a.callCount === 1) {
        call.emit("error", {
          code: grpc.status.PERMISSION_DENIED,
          details: "no identity issued",
        });
      } else {
        call.write(issued.message);
      }
    });
    try {
      using source = await openWorkloadApiSource({
        endpoint: `unix://${f.socket}`,
        timeoutMs: 10_000,
        ...FAST,
      });
      assert.equal(source.current().id.path, "/late");
      assert.equal(agent.callCount, 2);
    } finally {
      agent.stop();
    }
  });
});

Deno.test("test agent answers InvalidArgument to a call without the security header", async () => {
  await withFixture(async (f) => {
    const agent = await DevWorkloadAgent.start(
      f.socket,
      () => assert.fail("accepted a call without the header"),
    );
    const client = new grpc.Client(
      `unix:${f.socket}`,
      grpc.credentials.createInsecure(),
    );
    try {
      const status = await new Promise<grpc.StatusObject>((resolve) => {
        const call = client.makeServerStreamRequest(
          FETCH_X509_SVID_PATH,
          (b: Uint8Array) => Buffer.from(b),
          (b: Uint8Array) => b,
          new Uint8Array(0),
          new grpc.Metadata(),
        );
        call.on("error", () => {});
        call.on("status", resolve);
      });
      assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(agent.callCount, 1);
    } finally {
      client.close();
      agent.stop();
    }
  });
});

Deno.test("workload API source fails at once, without retrying, on InvalidArgument", async () => {
  await withFixture(async (f) => {
    const agent = await DevWorkloadAgent.start(
      f.socket,
      (call) =>
        call.emit("error", {
          code: grpc.status.INVALID_ARGUMENT,
          details: "malformed request",
        }),
    );
    try {
      const error = await openWorkloadApiSource({
        endpoint: `unix://${f.socket}`,
        timeoutMs: 60_000,
        ...FAST,
      }).then(() => assert.fail("opened"), (e: unknown) => e);
      assert.ok(error instanceof WorkloadApiError);
      assert.equal(error.grpcCode, grpc.status.INVALID_ARGUMENT);
      assert.match(error.message, /refused FetchX509SVID: INVALID_ARGUMENT: /);
      assert.match(error.message, new RegExp(`unix://${f.socket}`));
      assert.equal(agent.callCount, 1);
    } finally {
      agent.stop();
    }
  });
});

Deno.test("workload API source fails at once on a server without the method (Unimplemented)", async () => {
  await withFixture(async (f) => {
    const server = new grpc.Server();
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(
        `unix://${f.socket}`,
        grpc.ServerCredentials.createInsecure(),
        (e) => e ? reject(e) : resolve(),
      )
    );
    try {
      const error = await openWorkloadApiSource({
        endpoint: `unix://${f.socket}`,
        timeoutMs: 60_000,
        ...FAST,
      }).then(() => assert.fail("opened"), (e: unknown) => e);
      assert.ok(error instanceof WorkloadApiError);
      assert.equal(error.grpcCode, grpc.status.UNIMPLEMENTED);
    } finally {
      server.forceShutdown();
    }
  });
});

Deno.test("workload API source times out naming the endpoint when no SVID comes", async () => {
  await withFixture(async (f) => {
    const agent = await DevWorkloadAgent.start(f.socket, () => {});
    const saved = Deno.env.get("SPIKE_SPIFFE_SOURCE_TIMEOUT");
    Deno.env.set("SPIKE_SPIFFE_SOURCE_TIMEOUT", "150ms");
    try {
      const error = await openWorkloadApiSource({
        endpoint: `unix://${f.socket}`,
        ...FAST,
      }).then(() => assert.fail("opened"), (e: unknown) => e);
      assert.ok(error instanceof WorkloadApiError);
      assert.equal(
        error.message,
        `No X.509-SVID from the Workload API at unix://${f.socket} within 150ms`,
      );
    } finally {
      if (saved === undefined) Deno.env.delete("SPIKE_SPIFFE_SOURCE_TIMEOUT");
      else Deno.env.set("SPIKE_SPIFFE_SOURCE_TIMEOUT", saved);
      agent.stop();
    }
  });
});

Deno.test("workload API source times out with the last error when nothing listens", async () => {
  await withFixture(async (f) => {
    const error = await openWorkloadApiSource({
      endpoint: `unix://${f.socket}`,
      timeoutMs: 200,
      ...FAST,
    }).then(() => assert.fail("opened"), (e: unknown) => e);
    assert.ok(error instanceof WorkloadApiError);
    assert.match(error.message, /within 200ms \(last error: UNAVAILABLE: /);
  });
});

Deno.test("workload API source reads the endpoint from SPIFFE_ENDPOINT_SOCKET", async () => {
  const saved = Deno.env.get("SPIFFE_ENDPOINT_SOCKET");
  try {
    Deno.env.delete("SPIFFE_ENDPOINT_SOCKET");
    await assert.rejects(
      openWorkloadApiSource(),
      (e: unknown) =>
        e instanceof WorkloadApiError &&
        e.message.startsWith(
          "No Workload API endpoint: set SPIFFE_ENDPOINT_SOCKET",
        ),
    );
    Deno.env.set("SPIFFE_ENDPOINT_SOCKET", "unix://host/agent.sock");
    await assert.rejects(openWorkloadApiSource(), {
      name: "EndpointAddressError",
    });
  } finally {
    if (saved === undefined) Deno.env.delete("SPIFFE_ENDPOINT_SOCKET");
    else Deno.env.set("SPIFFE_ENDPOINT_SOCKET", saved);
  }
});

Deno.test("openSvidSource uses the Workload API when SPIKE_SVID_DIR is unset", async () => {
  await withFixture(async (f) => {
    const issued = await issue(
      f,
      "spiffe://spike.ist/spike/pilot/role/superuser",
    );
    const agent = await DevWorkloadAgent.start(
      f.socket,
      (call) => call.write(issued.message),
    );
    try {
      await withEnv({
        SPIKE_SVID_DIR: undefined,
        SPIFFE_ENDPOINT_SOCKET: `unix://${f.socket}`,
      }, async () => {
        using source = await openSvidSource();
        assert.equal(source.current().id.path, "/spike/pilot/role/superuser");
        assert.equal(agent.callCount, 1);
      });
    } finally {
      agent.stop();
    }
  });
});

Deno.test("openSvidSource reads the SVID directory when SPIKE_SVID_DIR is set", async () => {
  await withFixture(async (f) => {
    const svidDir = `${f.dir}/svid`;
    await issueSvidDir(f.ca, "spiffe://spike.ist/spike/keeper", svidDir);
    await withEnv({
      SPIKE_SVID_DIR: svidDir,
      // An endpoint that would fail proves the directory took precedence.
      SPIFFE_ENDPOINT_SOCKET: "unix://nowhere/agent.sock",
    }, async () => {
      const source = await openSvidSource();
      try {
        assert.equal(source.current().id.path, "/spike/keeper");
      } finally {
        source.close();
        await (source as Partial<FileSvidSource>).settled?.();
      }
    });
  });
});

Deno.test("workload API source in Deno without write access to the socket fails at once, naming the flag", async () => {
  await withFixture(async (f) => {
    const { message } = await issue(f, "spiffe://spike.ist/workload/app");
    const agent = await DevWorkloadAgent.start(
      f.socket,
      (call) => call.write(message),
    );
    try {
      const script = `${f.dir}/probe.ts`;
      const module = new URL("../lib/spiffe/workload_api.ts", import.meta.url);
      await Deno.writeTextFile(
        script,
        `import { openWorkloadApiSource } from "${module.href}";
try {
  const source = await openWorkloadApiSource({ endpoint: "unix://${f.socket}", timeoutMs: 60000 });
  source.close();
  console.log("connected");
} catch (e) {
  console.log(\`\${e.name}: \${e.message}\`);
}`,
      );
      const run = (write: string[]) =>
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--no-prompt",
            `--config=${new URL("../deno.json", import.meta.url).pathname}`,
            "--allow-read",
            "--allow-env",
            "--allow-net",
            ...write,
            script,
          ],
          stdin: "null",
          stdout: "piped",
          stderr: "null",
        }).output();
      const started = performance.now();
      const refused = await run([]);
      const out = new TextDecoder().decode(refused.stdout).trim();
      assert.equal(
        out,
        `WorkloadApiError: Connecting to the Workload API socket ${f.socket} needs write access to it: run Deno with --allow-write=${f.socket} (SPIFFE_ENDPOINT_SOCKET=unix://${f.socket})`,
      );
      // Not after the 60 s timeout: at once.
      assert.ok(performance.now() - started < 30_000);
      const granted = await run([`--allow-write=${f.socket}`]);
      assert.equal(
        new TextDecoder().decode(granted.stdout).trim(),
        "connected",
      );
    } finally {
      agent.stop();
    }
  });
});
