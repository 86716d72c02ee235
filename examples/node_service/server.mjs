// Copyright 2026 the SPIKE for Deno authors. MIT license.
// A Node.js service that gets its database password from SPIKE with its
// SPIFFE identity, and picks up a rotated password without a restart.
//
// Install the SDK (see the README) and run, with a policy granting `read`
// on `apps/orders/db` to this workload:
//
//   SPIKE_NEXUS_API_URL=https://nexus:8553 \
//   SPIFFE_ENDPOINT_SOCKET=unix:///run/spire/agent.sock \
//   node server.mjs
import { createServer } from "node:http";
import process from "node:process";
import { Spike } from "@spike/sdk";

const secretPath = process.env.DB_SECRET_PATH ?? "apps/orders/db";
const port = Number(process.env.PORT ?? "8080");
const intervalMs = Number(process.env.SECRET_POLL_MS ?? "30000");

const spike = await Spike.connect();
console.log(`Running as ${spike.spiffeId}`);

let database;
let passwordVersion = 0;
const stop = new AbortController();

// The first version arrives at once, later ones when an operator rotates
// the password (`spike pilot secret put apps/orders/db ...`).
const watching = (async () => {
  for await (
    const secret of spike.watch(secretPath, {
      intervalMs,
      signal: stop.signal,
    })
  ) {
    try {
      database = {
        host: process.env.DB_HOST ?? "localhost",
        database: "orders",
        user: secret.text("user") ?? "orders",
        // Drivers take the password as a string.
        password: secret.text("password") ?? "",
      };
      passwordVersion = secret.version ?? 0;
      // Here a real service rebuilds its pool: new pg.Pool(database).
      console.log(`Database credentials loaded (version ${passwordVersion})`);
    } finally {
      secret.zero();
    }
  }
})();

const server = createServer((_req, res) => {
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({
    ready: database !== undefined,
    user: database?.user ?? null,
    passwordVersion,
  }));
});
server.listen(port, "127.0.0.1", () => console.log("Listening"));

process.on("SIGTERM", () => {
  stop.abort();
  server.close();
});
await watching;
await spike.close();
