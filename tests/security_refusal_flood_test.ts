// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Issue 10, item 6, against a real nexus: unauthenticated clients used to
// add one audit line and one log line per connection (3,365 bare TCP
// connections in 5 s: 1 MB of audit lines). Refused connections are now
// told once per source and interval, then as one count; and the audit file
// is reopened on SIGHUP, so logrotate can move it.
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { Cluster } from "../scripts/cluster.ts";
import { readAudit, sleep, waitFor } from "./reliability_support.ts";

/** Opens a TCP connection to `port` and closes it without a word. */
function bareConnection(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.destroy());
    socket.on("error", () => {});
    socket.on("close", () => resolve());
  });
}

/** Starts a TLS handshake without a client certificate. */
function anonymousHandshake(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port,
      rejectUnauthorized: false,
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve());
    socket.on("secureConnect", () => socket.write("POST / HTTP/1.1\r\n\r\n"));
  });
}

Deno.test("a flood of refused connections costs a line per source and interval, plus a count", async () => {
  const cluster = await Cluster.create({
    backend: "memory",
    logLevel: "WARN",
  });
  const audit = `${cluster.dir}/audit.log`;
  cluster.options.nexusEnv.SPIKE_NEXUS_AUDIT_LOG = audit;
  cluster.options.nexusEnv.SPIKE_HTTP_SERVER_REFUSAL_LOG_INTERVAL = "2s";
  const bare = 400;
  const anonymous = 100;
  try {
    await cluster.startNexus();
    await cluster.waitUnlocked();
    const before = (await readAudit(audit)).length;
    for (let i = 0; i < bare; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, () => bareConnection(cluster.nexusPort)),
      );
    }
    for (let i = 0; i < anonymous; i += 25) {
      await Promise.all(
        Array.from(
          { length: 25 },
          () => anonymousHandshake(cluster.nexusPort),
        ),
      );
    }
    // Every refusal is accounted for: one line each for the first of an
    // interval, a count for the rest.
    const handshakes = async () =>
      (await readAudit(audit)).slice(before).filter((e) =>
        e.action === "handshake"
      );
    const told = async () =>
      (await handshakes()).reduce(
        (sum, e) => sum + ((e as { count?: number }).count ?? 1),
        0,
      );
    await waitFor(
      "the counts of the flood",
      async () => await told() >= bare + anonymous,
      20_000,
      200,
    );
    await sleep(2_500);
    const lines = await handshakes();
    assert.equal(await told(), bare + anonymous);
    assert.ok(
      lines.length <= 12,
      `${lines.length} audit lines for ${bare + anonymous} refusals`,
    );
    for (const line of lines) {
      assert.match(line.caller ?? "", /^127\.0\.0\.1(:\d+)?$/);
      assert.equal(line.outcome, "denied");
    }
    const counted = lines.filter((l) => (l as { count?: number }).count);
    assert.ok(counted.length >= 1);
    for (const line of counted) assert.equal(line.caller, "127.0.0.1");
    const log = await Deno.readTextFile(cluster.nexus!.logFile);
    const refusedLines = log.split("\n").filter((l) =>
      l.includes('"msg":"Connection') && l.includes("refused")
    );
    assert.ok(
      refusedLines.length <= 12,
      `${refusedLines.length} log lines for ${bare + anonymous} refusals`,
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("SIGHUP reopens the audit file, so it can be rotated", async () => {
  const cluster = await Cluster.create({ backend: "memory" });
  const audit = `${cluster.dir}/audit.log`;
  cluster.options.nexusEnv.SPIKE_NEXUS_AUDIT_LOG = audit;
  try {
    await cluster.startNexus();
    await cluster.waitUnlocked();
    const put = (path: string) =>
      cluster.call("superuser", "/v1/store/secrets", {
        path,
        values: { k: "v" },
      });
    assert.equal((await put("before/rotation")).status, 200);
    await Deno.rename(audit, `${audit}.1`);
    cluster.nexus!.signal("SIGHUP");
    await waitFor("the audit file to be reopened", async () => {
      try {
        await Deno.stat(audit);
        return true;
      } catch {
        return false;
      }
    });
    assert.equal((await put("after/rotation")).status, 200);
    assert.ok(cluster.nexus!.running, "SIGHUP stopped nexus");
    const old = await readAudit(`${audit}.1`);
    const now = await readAudit(audit);
    assert.ok(old.some((e) => e.resource === "before/rotation"));
    assert.ok(!old.some((e) => e.resource === "after/rotation"));
    assert.ok(now.some((e) => e.resource === "after/rotation"));
    assert.ok(!now.some((e) => e.resource === "before/rotation"));
    assert.equal((await Deno.stat(audit)).mode! & 0o777, 0o600);
  } finally {
    await cluster.close();
  }
});
