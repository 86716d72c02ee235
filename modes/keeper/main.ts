// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike keeper`: holds one shard of the root key in memory and gives it
 * back only to nexus, over SPIFFE mTLS.
 *
 * @module
 */
import {
  ConfigError,
  envString,
  parseListenAddress,
} from "../../lib/config/env.ts";
import {
  readServerTimeouts,
  type ServerTimeouts,
} from "../../lib/config/server_timeouts.ts";
import { checkSharedConfig } from "../../lib/config/shared.ts";
import { createLogger } from "../../lib/log.ts";
import { serveMtls } from "../../lib/mtls/server.ts";
import { openSvidSource } from "../../lib/spiffe/open_source.ts";
import { hasRole } from "../../lib/spiffe/roles.ts";
import { waitForShutdown } from "../../lib/shutdown.ts";
import { keeperHandler } from "./routes.ts";
import { ShardSlot } from "./shard_slot.ts";

const HELP = `spike keeper: hold one shard of the root key, in memory only

Environment:
  SPIKE_KEEPER_TLS_PORT      listen address (default ":8443")
  SPIKE_SVID_DIR             SVID files (svid.pem, svid_key.pem, svid_bundle.pem)
  SPIFFE_ENDPOINT_SOCKET     SPIFFE Workload API, when SPIKE_SVID_DIR is unset
  SPIKE_TRUST_ROOT_NEXUS     trust domains of nexus (only nexus reads the shard)
  SPIKE_SYSTEM_LOG_LEVEL     DEBUG, INFO, WARN (default), ERROR
  SPIKE_HTTP_SERVER_READ_HEADER_TIMEOUT  time to send request headers (10s)
  SPIKE_HTTP_SERVER_REQUEST_TIMEOUT      time to send a whole request (60s)
`;

/** Body limit: a contribute request is well under 1 KiB. */
const MAX_BODY_BYTES = 4096;

/** Everything a keeper reads from its environment. */
export interface KeeperConfig extends ServerTimeouts {
  /** Listen host ("" = all interfaces) and port. */
  readonly listen: { host: string; port: number };
}

/**
 * Reads and checks the keeper configuration, including the variables every
 * mode shares (log level, trust roots, SVID source).
 *
 * @returns the configuration
 * @throws {ConfigError} naming the first invalid variable
 */
export function readKeeperConfig(): KeeperConfig {
  checkSharedConfig();
  return {
    listen: parseListenAddress(
      "SPIKE_KEEPER_TLS_PORT",
      envString("SPIKE_KEEPER_TLS_PORT", ":8443"),
    ),
    ...readServerTimeouts(),
  };
}

/**
 * Runs the keeper until SIGINT/SIGTERM.
 *
 * @param args command-line arguments after `keeper`
 * @returns the exit code
 */
export async function main(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(HELP);
    return 0;
  }
  let config: KeeperConfig;
  try {
    config = readKeeperConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
  const log = createLogger("keeper");
  using source = await openSvidSource();
  const own = source.current().id;
  if (!hasRole(own, "keeper")) {
    console.error(
      `This SVID (${own.uri}) is not a keeper identity: keepers need spiffe://<trust domain>/spike/keeper`,
    );
    return 1;
  }
  const slot = new ShardSlot();
  const server = await serveMtls({
    source,
    hostname: config.listen.host,
    port: config.listen.port,
    maxBodyBytes: MAX_BODY_BYTES,
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    authorizePeer: (id) => hasRole(id, "nexus") || hasRole(id, "bootstrap"),
    // Refused connections are logged once, by the server.
    handler: keeperHandler(slot, log),
  });
  // Listen for the stop signals before saying so: a supervisor may send one
  // the moment it reads the line.
  const stop = waitForShutdown();
  log.info("Keeper listening", { port: server.port, id: own.uri });
  console.error(`SPIKE keeper ${own.uri} listening on port ${server.port}`);
  await stop;
  await server.close();
  slot.clear();
  return 0;
}
