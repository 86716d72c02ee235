// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A Deno service that gets its database password from SPIKE with its
 * SPIFFE identity, and picks up a rotated password without a restart.
 *
 * Run (the workload needs a policy granting `read` on `apps/orders/db`):
 *
 *   SPIKE_NEXUS_API_URL=https://nexus:8553 \
 *   SPIFFE_ENDPOINT_SOCKET=unix:///run/spire/agent.sock \
 *   deno run --allow-env --allow-net --allow-read=/run/spire/agent.sock \
 *     --allow-write=/run/spire/agent.sock main.ts
 *
 * (Deno asks for read and write access to a unix socket it connects to.
 * With an SVID folder instead: `SPIKE_SVID_DIR=DIR` and `--allow-read=DIR`.)
 *
 * @module
 */
import { Spike } from "@spike/sdk";

/** What the database driver needs to connect. */
interface DatabaseConfig {
  host: string;
  database: string;
  username: string;
  password: string;
}

const secretPath = Deno.env.get("DB_SECRET_PATH") ?? "apps/orders/db";
const port = Number(Deno.env.get("PORT") ?? "8080");
const intervalMs = Number(Deno.env.get("SECRET_POLL_MS") ?? "30000");

await using spike = await Spike.connect();
console.log(`Running as ${spike.spiffeId}`);

let database: DatabaseConfig | undefined;
let passwordVersion = 0;
const stop = new AbortController();

// The first version arrives at once, later ones when an operator rotates
// the password (`spike pilot secret put apps/orders/db ...`).
const watching = (async () => {
  for await (
    using secret of spike.watch(secretPath, {
      intervalMs,
      signal: stop.signal,
    })
  ) {
    database = {
      host: Deno.env.get("DB_HOST") ?? "localhost",
      database: "orders",
      username: secret.text("user") ?? "orders",
      // Drivers take the password as a string; the bytes are zeroed when
      // `secret` goes out of scope.
      password: secret.text("password") ?? "",
    };
    passwordVersion = secret.version ?? 0;
    // Here a real service rebuilds its pool: postgres(database), new Pool(...).
    console.log(`Database credentials loaded (version ${passwordVersion})`);
  }
})();

const server = Deno.serve(
  { hostname: "127.0.0.1", port, onListen: () => console.log("Listening") },
  () =>
    Response.json({
      ready: database !== undefined,
      user: database?.username ?? null,
      passwordVersion,
    }),
);
Deno.addSignalListener("SIGTERM", () => {
  stop.abort();
  server.shutdown();
});
await server.finished;
await watching;
