// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike nexus`: the secrets store. Listens at once, answers 503 on data
 * routes until it has its root key (new store, keepers, or operator
 * restore), then keeps every keeper supplied with its share.
 *
 * @module
 */
import { createLogger, type Logger } from "../../lib/log.ts";
import { withoutPermissionAdvice } from "../../lib/permission_error.ts";
import { createMtlsClient } from "../../lib/mtls/client.ts";
import { serveMtls } from "../../lib/mtls/server.ts";
import { openSvidSource } from "../../lib/spiffe/open_source.ts";
import { hasRole } from "../../lib/spiffe/roles.ts";
import { waitForShutdown } from "../../lib/shutdown.ts";
import { derivePurposeKeys, keyCheckValue } from "../../lib/crypto/kdf.ts";
import { PolicyEngine } from "./policy/engine.ts";
import { ConfigError } from "../../lib/config/env.ts";
import { type NexusConfig, readNexusConfig } from "./config.ts";
import { RootKeyState } from "./root_key.ts";
import { Keepers } from "./keepers.ts";
import { RestoreSession } from "./restore.ts";
import {
  initializeNewStore,
  NewStoreRefusedError,
  recoverFromKeepers,
} from "./lifecycle.ts";
import { KeeperSync } from "./keeper_sync.ts";
import { AuditLog, newTrailId } from "./audit.ts";
import { createDispatcher, type Route, routeKey } from "./router.ts";
import { operatorRoutes } from "./routes/operator.ts";
import { dataRoutes } from "./routes/data.ts";
import { openStore, resolveDataDir } from "./store/open.ts";
import type { StoreMeta } from "./store/backend.ts";

const HELP = `spike nexus: the SPIKE secrets store

Environment (defaults in brackets):
  SPIKE_NEXUS_TLS_PORT                 listen address [:8553]
  SPIKE_NEXUS_BACKEND_STORE            sqlite or memory [sqlite]
  SPIKE_NEXUS_DATA_DIR                 data folder [~/.spike/data]
  SPIKE_NEXUS_KEEPER_PEERS             keeper URLs, comma-separated (sqlite)
  SPIKE_NEXUS_SHAMIR_SHARES            shares = number of keepers [3]
  SPIKE_NEXUS_SHAMIR_THRESHOLD         shares needed to rebuild the key [2]
  SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL   shard push period [5m]
  SPIKE_NEXUS_RECOVERY_MAX_INTERVAL    cap of the keeper polling backoff [60s]
  SPIKE_NEXUS_KEEPER_TIMEOUT           time limit of one keeper call [5s]
  SPIKE_NEXUS_RESTORE_TIMEOUT          partial restore shards expire after [15m]
  SPIKE_NEXUS_MAX_SECRET_VERSIONS      versions kept per secret [10]
  SPIKE_NEXUS_CRYPTO_MAX_CIPHERTEXT_SIZE  cipher size limit in bytes [65536]
  SPIKE_NEXUS_MAX_REQUEST_BYTES        request body limit [1048576]
  SPIKE_NEXUS_AUDIT_LOG                audit log file [stderr]
  SPIKE_HTTP_SERVER_READ_HEADER_TIMEOUT  time to send request headers [10s]
  SPIKE_HTTP_SERVER_REQUEST_TIMEOUT    time to send a whole request [60s]
  SPIKE_SVID_DIR / SPIFFE_ENDPOINT_SOCKET  where the SVID comes from
  SPIKE_SYSTEM_LOG_LEVEL               DEBUG, INFO, WARN, ERROR [WARN]
`;

/**
 * Runs nexus until SIGINT/SIGTERM.
 *
 * @param args command-line arguments after `nexus`
 * @returns the exit code
 */
export async function main(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(HELP);
    return 0;
  }
  const log = createLogger("nexus");
  let config: NexusConfig;
  try {
    config = readNexusConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
  try {
    return await run(config, log);
  } catch (e) {
    // A setting only found wrong when used (the audit log's folder).
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
}

async function run(config: NexusConfig, log: Logger): Promise<number> {
  using source = await openSvidSource();
  const own = source.current().id;
  if (!hasRole(own, "nexus")) {
    console.error(
      `This SVID (${own.uri}) is not a nexus identity: nexus needs spiffe://<trust domain>/spike/nexus`,
    );
    return 1;
  }
  const store = await openStore({
    backend: config.backend,
    dataDir: config.backend === "sqlite" ? resolveDataDir() : undefined,
    maxVersions: config.maxSecretVersions,
  });
  let meta: StoreMeta | undefined = await store.readMeta();
  if (
    meta && config.backend === "sqlite" &&
    (meta.shareCount !== config.shares || meta.threshold !== config.threshold)
  ) {
    console.error(
      `This store was split into ${meta.shareCount} shares with threshold ${meta.threshold}, but SPIKE_NEXUS_SHAMIR_SHARES=${config.shares} and SPIKE_NEXUS_SHAMIR_THRESHOLD=${config.threshold}: set them to the store's values`,
    );
    await store.close();
    return 2;
  }
  const audit = await AuditLog.open(config.auditLog);
  const engine = new PolicyEngine();
  const state = new RootKeyState(async (keys) => {
    await store.unlock(keys);
    const problems = await engine.reload(() =>
      store.policies.listPolicies({
        onUndecryptable: (name) =>
          log.error("Stored policy does not decrypt; it grants nothing", {
            policy: name,
          }),
      })
    );
    for (const p of problems) {
      log.error("Stored policy is invalid; it grants nothing", { ...p });
    }
  });
  const keeperClient = config.backend === "sqlite"
    ? createMtlsClient({
      source,
      authorizeServer: (id) => hasRole(id, "keeper"),
      timeoutMs: config.keeperTimeoutMs,
    })
    : undefined;
  const keepers = keeperClient
    ? new Keepers(config.keeperPeers, keeperClient, config.keeperTimeoutMs)
    : undefined;
  const abort = new AbortController();
  const sync = keepers
    ? new KeeperSync({
      keepers,
      state,
      meta: () => meta,
      intervalMs: config.keeperUpdateIntervalMs,
      allowThresholdOne: config.allowThresholdOne,
      log,
    })
    : undefined;
  const restore = new RestoreSession(
    state,
    () => meta,
    config.restoreTimeoutMs,
    config.allowThresholdOne,
  );
  const data = dataRoutes({ config, store, state, engine, log });
  const routes = new Map<string, Route>([
    ...operatorRoutes({
      state,
      meta: () => meta,
      restore,
      keepers,
      backend: config.backend,
      allowThresholdOne: config.allowThresholdOne,
      push: sync && ((why: string) => sync.pushNow(why)),
    }).map(([path, route]): [string, Route] => [routeKey(path), route]),
    ...data,
  ]);
  const server = await serveMtls({
    source,
    hostname: config.listen.host,
    port: config.listen.port,
    maxBodyBytes: config.maxBodyBytes,
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    authorizePeer: () => true,
    handler: createDispatcher({
      routes,
      isUnlocked: () => state.unlocked,
      audit,
      log,
    }),
    // The server logs the refusal itself; here it only gets its audit line.
    onRefused: (reason, peer) => {
      audit.write({
        trail: "tls",
        caller: peer ?? null,
        route: "",
        action: "handshake",
        resource: null,
        outcome: "denied",
        status: 0,
        err: reason,
        durationMs: 0,
      });
    },
    // The server answers these (400, 413) before the dispatcher runs; they
    // still get their audit and log line.
    onRequestRefused: (info) => {
      const trail = newTrailId();
      log.info("Request refused", {
        trail,
        code: info.code,
        status: info.status,
      });
      audit.write({
        trail,
        caller: info.peerId.uri,
        route: info.path,
        action: info.action === "" ? "default" : info.action,
        resource: null,
        outcome: "refused",
        status: info.status,
        err: info.code,
        durationMs: 0,
      });
    },
  });
  // Listen for the stop signals before saying so: a supervisor may send one
  // the moment it reads the line.
  const stop = waitForShutdown();
  console.error(`SPIKE nexus ${own.uri} listening on port ${server.port}`);
  log.info("Nexus listening", { port: server.port, backend: config.backend });

  const lifecycle = (async () => {
    if (config.backend === "memory") {
      const key = crypto.getRandomValues(new Uint8Array(32));
      const storeId = crypto.getRandomValues(new Uint8Array(16));
      const keys = await derivePurposeKeys(key, storeId);
      await store.initMeta({
        storeId,
        keyCheck: await keyCheckValue(keys),
        threshold: 0,
        shareCount: 0,
        commitments: [],
      });
      await state.unlock(key, keys);
      log.warn(
        "In-memory mode: no keepers, data is lost on exit; not for production",
      );
      return;
    }
    if (!meta) {
      meta = await initializeNewStore({
        store,
        config,
        state,
        keepers: keepers!,
        log,
        signal: abort.signal,
      });
      if (!meta) return;
      log.info("New store initialized with a fresh root key");
      await sync!.run(abort.signal, true);
    } else {
      const recovered = await recoverFromKeepers({
        keepers: keepers!,
        meta,
        state,
        config,
        log,
        signal: abort.signal,
      });
      // A restore pushed the shards as it unlocked; the next push is due
      // one interval later (or sooner, for keepers that did not take it).
      // After an unlock from the keepers, an operator's partial restore
      // shards are of no more use.
      if (recovered) restore.clear();
      await sync!.run(abort.signal, recovered);
    }
  })().catch((e) => {
    // Without a root key nexus cannot serve; stopping is clearer than a
    // nexus that stays locked for a reason nobody sees.
    log.error("Root key lifecycle failed", { error: e.name, msg: e.message });
    console.error(
      e instanceof NewStoreRefusedError
        ? e.message
        : `Nexus cannot set up its root key: ${
          withoutPermissionAdvice(e.message)
        }`,
    );
    Deno.exit(1);
  });

  const signal = await stop;
  log.info("Stopping", { signal });
  abort.abort();
  await lifecycle;
  await server.close();
  keeperClient?.close();
  await store.close();
  audit.close();
  restore.clear();
  state.clear();
  return 0;
}
