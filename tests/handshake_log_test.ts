// Copyright 2026 the SPIKE for Deno authors. MIT license.
// A refused TLS connection is logged once by a keeper and by nexus (the
// mTLS server logs it; the modes used to log it a second time).
import assert from "node:assert/strict";
import tls from "node:tls";
import { Cluster } from "../scripts/cluster.ts";

/** Connects without a client certificate and waits until the server drops it. */
function connectWithoutCertificate(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port,
      rejectUnauthorized: false,
    });
    socket.on("error", () => resolve());
    socket.on("close", () => resolve());
  });
}

async function refusals(logFile: string): Promise<number> {
  const text = await Deno.readTextFile(logFile);
  return text.split("\n").filter((l) => l.includes("Connection refused"))
    .length;
}

Deno.test("a refused handshake is logged once, by keeper and by nexus", async () => {
  const cluster = await Cluster.create({
    backend: "memory",
    keepers: 1,
    logLevel: "WARN",
  });
  try {
    const keeper = await cluster.startKeeper(1);
    const nexus = await cluster.startNexus();
    await cluster.waitUnlocked();
    for (
      const [proc, port] of [
        [keeper, cluster.keeperPorts[0]!],
        [nexus, cluster.nexusPort],
      ] as const
    ) {
      // The cluster's own port probes (connect, close) count as refusals
      // too; count from here.
      await new Promise((r) => setTimeout(r, 300));
      const before = await refusals(proc.logFile);
      await connectWithoutCertificate(port);
      const deadline = Date.now() + 10_000;
      while (
        await refusals(proc.logFile) === before && Date.now() < deadline
      ) {
        await new Promise((r) => setTimeout(r, 50));
      }
      // Give a second line the time to appear, if there were one.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(
        await refusals(proc.logFile),
        before + 1,
        await Deno.readTextFile(proc.logFile),
      );
    }
  } finally {
    await cluster.close();
  }
});
