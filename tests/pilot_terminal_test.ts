// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * What pilot does on a terminal, and only there: a note saying what a long
 * wait is for (the Workload API, a silent nexus), and no binary ciphertext
 * written to the screen. Plus the wait that needs no terminal to end early:
 * a Workload API socket that does not exist.
 */
import assert from "node:assert/strict";
import { runPilot } from "../scripts/cluster.ts";
import { HAS_SCRIPT, pilotOnPty } from "./pty_support.ts";

/** A TCP server that accepts connections and never says a word. */
function silentTcpServer(): { port: number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) conns.push(conn);
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close: () => {
      for (const c of conns) c.close();
      listener.close();
    },
  };
}

Deno.test("pilot on a terminal", {
  ignore: !HAS_SCRIPT,
}, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "spike-pty-" });
  try {
    await t.step("cipher encrypt refuses to write binary to it", async () => {
      await Deno.writeTextFile(`${dir}/plain.txt`, "hello");
      const res = await pilotOnPty(
        ["cipher", "encrypt", "-f", `${dir}/plain.txt`],
        { SPIKE_SVID_DIR: `${dir}/none` },
        dir,
      );
      assert.equal(res.code, 2);
      assert.equal(
        res.output,
        "Refusing to write binary ciphertext to a terminal: give -o FILE, redirect stdout to a file, or use --json for text\n",
      );
    });

    await t.step(
      "says what it waits for when the Workload API is silent",
      async () => {
        const socket = `${dir}/agent.sock`;
        const listener = Deno.listen({ transport: "unix", path: socket });
        const conns: Deno.Conn[] = [];
        (async () => {
          for await (const conn of listener) conns.push(conn);
        })().catch(() => {});
        try {
          const env = {
            SPIFFE_ENDPOINT_SOCKET: `unix://${socket}`,
            SPIKE_SPIFFE_SOURCE_TIMEOUT: "5s",
          };
          const res = await pilotOnPty(["status"], env, dir);
          assert.equal(res.code, 1, res.output);
          const lines = res.output.trimEnd().split("\n");
          assert.equal(
            lines[0],
            `Waiting for an X.509-SVID from the SPIFFE Workload API at unix://${socket} (up to 5s, SPIKE_SPIFFE_SOURCE_TIMEOUT)…`,
          );
          assert.match(
            lines[1]!,
            /^Cannot get this workload's SVID: no X\.509-SVID/,
          );
          // Not on a terminal: the error only.
          const piped = await runPilot(["status"], env, dir);
          assert.equal(piped.code, 1);
          assert.doesNotMatch(piped.stderr, /Waiting/);
          assert.equal(piped.stderr.trimEnd().split("\n").length, 1);
        } finally {
          for (const c of conns) c.close();
          listener.close();
        }
      },
    );

    await t.step(
      "says what it waits for when nexus accepts but never answers",
      async () => {
        const { createDevCa, issueSvidDir } = await import(
          "../scripts/dev_ca.ts"
        );
        const ca = await createDevCa("spike.ist");
        await issueSvidDir(
          ca,
          "spiffe://spike.ist/spike/pilot/role/superuser",
          `${dir}/su`,
        );
        const server = silentTcpServer();
        try {
          const url = `https://127.0.0.1:${server.port}`;
          const env = {
            SPIKE_SVID_DIR: `${dir}/su`,
            SPIKE_NEXUS_API_URL: url,
            SPIKE_HTTP_CLIENT_TIMEOUT: "5s",
          };
          const res = await pilotOnPty(["secret", "list"], env, dir);
          assert.equal(res.code, 6, res.output);
          const lines = res.output.trimEnd().split("\n");
          assert.equal(
            lines[0],
            `Waiting for SPIKE Nexus at ${url} to answer (up to 5s, SPIKE_HTTP_CLIENT_TIMEOUT)…`,
          );
          assert.match(lines[1]!, /^Cannot reach SPIKE Nexus at /);
        } finally {
          server.close();
        }
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a Workload API socket that does not exist fails at once, saying so", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spike-nosock-" });
  try {
    // With a long timeout: only the early check can end this quickly, and
    // only it says "does not exist".
    const res = await runPilot(["status"], {
      SPIFFE_ENDPOINT_SOCKET: `unix://${dir}/missing.sock`,
      SPIKE_SPIFFE_SOURCE_TIMEOUT: "10m",
    }, dir);
    assert.equal(res.code, 1);
    assert.equal(
      res.stderr,
      `Cannot get this workload's SVID: the Workload API socket ${dir}/missing.sock does not exist (SPIFFE_ENDPOINT_SOCKET=unix://${dir}/missing.sock): start the SPIRE agent, or point SPIFFE_ENDPOINT_SOCKET at its socket\n`,
    );
    await Deno.writeTextFile(`${dir}/file`, "");
    const notSocket = await runPilot(["status"], {
      SPIFFE_ENDPOINT_SOCKET: `unix://${dir}/file`,
    }, dir);
    assert.equal(notSocket.code, 1);
    assert.match(notSocket.stderr, /is not a socket/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
