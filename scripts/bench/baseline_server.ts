// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The benchmark's baseline: the same SPIFFE mTLS server nexus uses
 * (`serveMtls` on `node:https`) with a handler that does nothing but
 * answer, in a process of its own. What nexus reaches against it is the
 * share of the practical ceiling that SPIKE's own work leaves.
 *
 * Usage: `baseline_server.ts <svid dir> <port> <response bytes>`; prints
 * `ready` once listening and stops on SIGTERM.
 *
 * @module
 */
import { serveMtls } from "../../lib/mtls/server.ts";
import { openFileSvidSource } from "../../lib/spiffe/file_source.ts";
import { waitForShutdown } from "../../lib/shutdown.ts";

/** The line printed once the server listens. */
export const READY_MARKER = "ready";

if (import.meta.main) {
  const [svidDir, port, size] = Deno.args;
  if (svidDir === undefined || port === undefined || size === undefined) {
    console.error(
      "Usage: baseline_server.ts <svid dir> <port> <response bytes>",
    );
    Deno.exit(2);
  }
  // A response shaped like a secret read, so both move the same bytes.
  const body = JSON.stringify({ data: { value: "x".repeat(Number(size)) } });
  const source = await openFileSvidSource(svidDir, { watch: false });
  const server = await serveMtls({
    source,
    hostname: "127.0.0.1",
    port: Number(port),
    maxBodyBytes: 1024 * 1024,
    authorizePeer: () => true,
    handler: () =>
      Promise.resolve({
        status: 200,
        headers: { "Content-Type": "application/json" },
        body,
      }),
  });
  const stop = waitForShutdown();
  console.log(READY_MARKER);
  await stop;
  await server.close();
  source.close();
  await source.settled();
}
