// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike keeper`: holds one shard of the root key in memory and gives it
 * back only to nexus, over SPIFFE mTLS.
 *
 * @module
 */
import {
  ConfigError,
  envBool,
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
import type { SvidSource } from "../../lib/spiffe/source.ts";
import { hasRole, ownRoleProblem } from "../../lib/spiffe/roles.ts";
import { waitForShutdown } from "../../lib/shutdown.ts";
import { keeperHandler } from "./routes.ts";
import { ShardSlot } from "./shard_slot.ts";

const HELP = `spike keeper: hold one shard of the root key, in memory only

Environment:
  SPIKE_KEEPER_TLS_PORT      listen address (default ":8443")
  SPIKE_SVID_DIR             SVID files (svid.pem, svid_key.pem, svid_bundle.pem)
  SPIFFE_ENDPOINT_SOCKET     SPIFFE Workload API, when SPIKE_SVID_DIR is unset
  SPIKE_FEDERATED_BUNDLES    with SPIKE_SVID_DIR: <trust domain>=<PEM file>,...
  SPIKE_TRUST_ROOT_NEXUS     trust domains of nexus (only nexus reads the shard)
  SPIKE_KEEPER_ALLOW_BOOTSTRAP  also take shards from spike/bootstrap
                             identities, as upstream did (default false)
  SPIKE_SYSTEM_LOG_LEVEL     DEBUG, INFO, WARN (default), ERROR
  SPIKE_HTTP_SERVER_READ_HEADER_TIMEOUT  time to send request headers (10s)
  SPIKE_HTTP_SERVER_REQUEST_TIMEOUT      time to send a whole request (60s)
  SPIKE_HTTP_SERVER_REFUSAL_LOG_INTERVAL refused connections are logged once
                                         per source and counted per interval (60s)
`;

/** Body limit: a contribute request is well under 1 KiB. */
const MAX_BODY_BYTES = 4096;

/** Everything a keeper reads from its environment. */
export interface KeeperConfig extends ServerTimeouts {
  /** Listen host ("" = all interfaces) and port. */
  readonly listen: { host: string; port: number };
  /** Whether `spike/bootstrap` identities may store a shard (upstream's habit). */
  readonly allowBootstrap: boolean;
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
    allowBootstrap: envBool("SPIKE_KEEPER_ALLOW_BOOTSTRAP", false),
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
  let opened: SvidSource;
  try {
    opened = await openSvidSource();
  } catch (e) {
    // A federated bundle file that is missing or names the wrong domain.
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
  using source = opened;
  const own = source.current().id;
  const notKeeper = ownRoleProblem(own, "keeper", "keeper");
  if (notKeeper !== undefined) {
    console.error(notKeeper);
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
    // Only nexus has business here. A bootstrap identity could otherwise
    // overwrite every keeper's shard and lock the store at the next start.
    authorizePeer: (id) =>
      hasRole(id, "nexus") ||
      (config.allowBootstrap && hasRole(id, "bootstrap")),
    handler: keeperHandler(slot, log, config.allowBootstrap),
    refusalIntervalMs: config.refusalIntervalMs,
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
