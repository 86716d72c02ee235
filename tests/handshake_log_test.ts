// Copyright 2026 the SPIKE for Deno authors. MIT license.
// A refused TLS connection is logged once by a keeper and by nexus: the
// mTLS server logs it (the first from a source at once, then counts), and
// the modes used to log it a second time.
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { Cluster } from "../scripts/cluster.ts";

/**
 * Connects from 127.0.0.2 (a source the cluster's own port probes do not
 * use, so its first refusal is logged at once) without a client
 * certificate, and waits until the server drops it.
 *
 * @returns the client's `address:port` as the server sees it
 */
function connectWithoutCertificate(port: number): Promise<string> {
  return new Promise((resolve) => {
    const tcp = net.connect({
      host: "127.0.0.1",
      port,
      localAddress: "127.0.0.2",
    });
    tcp.once("connect", () => {
      const local = `127.0.0.2:${tcp.localPort}`;
      const socket = tls.connect({ socket: tcp, rejectUnauthorized: false });
      socket.on("error", () => resolve(local));
      socket.on("close", () => resolve(local));
    });
    tcp.once("error", () => resolve(""));
  });
}

async function linesAbout(logFile: string, peer: string): Promise<string[]> {
  const text = await Deno.readTextFile(logFile);
  // Log lines only: nexus's audit line (on stderr by default) is a record,
  // not a second log line.
  return text.split("\n").filter((l) =>
    l.includes(`"${peer}"`) && l.includes('"msg":')
  );
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
      const peer = await connectWithoutCertificate(port);
      assert.notEqual(peer, "");
      const deadline = Date.now() + 10_000;
      while (
        (await linesAbout(proc.logFile, peer)).length === 0 &&
        Date.now() < deadline
      ) {
        await new Promise((r) => setTimeout(r, 50));
      }
      // Give a second line the time to appear, if there were one.
      await new Promise((r) => setTimeout(r, 300));
      const lines = await linesAbout(proc.logFile, peer);
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0]!, /"msg":"Connection refused"/);
    }
  } finally {
    await cluster.close();
  }
});
