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
import {
  describeTrustRoots,
  hasRole,
  ownRoleProblem,
} from "../../lib/spiffe/roles.ts";
import { waitForShutdown } from "../../lib/shutdown.ts";
import {
  derivePurposeKeys,
  keyCheckValue,
  verifyKeyCheck,
} from "../../lib/crypto/kdf.ts";
import { PolicyEngine } from "./policy/engine.ts";
import { ConfigError } from "../../lib/config/env.ts";
import { type NexusConfig, readNexusConfig } from "./config.ts";
import { RootKeyState } from "./root_key.ts";
import { authorizeKeeper, Keepers } from "./keepers.ts";
import { RestoreSession } from "./restore.ts";
import { RollbackGuard } from "./rollback_guard.ts";
import {
  initializeNewStore,
  NewStoreRefusedError,
  recoverFromKeepers,
} from "./lifecycle.ts";
import { KeeperSync } from "./keeper_sync.ts";
import { AuditLog, type AuditRecord, newTrailId } from "./audit.ts";
import { AuditAnchors } from "./audit_anchor.ts";
import { createDispatcher, type Route, routeKey } from "./router.ts";
import { operatorRoutes } from "./routes/operator.ts";
import { lifecycleRoutes, lifecycleStatus } from "./routes/lifecycle.ts";
import { forgetStrayShards } from "./rekey.ts";
import { dataRoutes } from "./routes/data.ts";
import { type NexusStore, openStore, resolveDataDir } from "./store/open.ts";
import { IntegrityError } from "./store/integrity.ts";
import type { PolicyRecord } from "./store/policy_store.ts";
import { ErrorCode } from "../../lib/wire/errors.ts";
import { StoreError, type StoreMeta } from "./store/backend.ts";
import { PostgresBackend } from "./store/postgres_backend.ts";
import { ReplicatedPolicyEngine } from "./ha/policy_sync.ts";
import { poolSettings, Replication } from "./ha/replication.ts";
import { startSharedStore } from "./ha/first_start.ts";

const HELP = `spike nexus: the SPIKE secrets store

Usage:
  spike nexus                          run nexus
  spike nexus restore-backup FILE      write a backup into an empty data folder

Environment (defaults in brackets):
  SPIKE_NEXUS_TLS_PORT                 listen address [:8553]
  SPIKE_NEXUS_BACKEND_STORE            sqlite, postgres or memory [sqlite]
  SPIKE_NEXUS_DATA_DIR                 data folder (sqlite) [~/.spike/data]
  SPIKE_NEXUS_DATABASE_URL             postgres://user@host:port/db?sslmode=…
                                       (postgres; sslmode verify-full default)
  SPIKE_NEXUS_DATABASE_CA              CA file of the database server
  SPIKE_NEXUS_DATABASE_CLIENT_CERT / _KEY  client certificate files, or
                                       CLIENT_CERT=svid for nexus's SVID
  SPIKE_NEXUS_DATABASE_POOL_SIZE       connections per replica [10]
  SPIKE_NEXUS_DATABASE_STATEMENT_TIMEOUT  [10s]
  SPIKE_NEXUS_DATABASE_IDLE_TRANSACTION_TIMEOUT  [5s]
  SPIKE_NEXUS_POLICY_CHECK_INTERVAL    policy generation check (postgres) [1s]
  SPIKE_NEXUS_WRITE_FENCE_PRUNE_INTERVAL  write fence pruning (postgres) [5m]
  SPIKE_NEXUS_REPLICA_NAME             this replica's name in pilot status
  SPIKE_NEXUS_KEEPER_PEERS             keeper URLs, comma-separated (sqlite,
                                       postgres); pin each keeper's SPIFFE ID with
                                       https://keeper-1:8443#spiffe://<td>/spike/keeper/1
  SPIKE_NEXUS_SHAMIR_SHARES            shares = number of keepers [3]
  SPIKE_NEXUS_SHAMIR_THRESHOLD         shares needed to rebuild the key [2]
  SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL   shard push period [5m]
  SPIKE_NEXUS_CHECKPOINT_DELAY         a store checkpoint reaches the keepers
                                       at most this long after a write [1s]
  SPIKE_NEXUS_RECOVERY_MAX_INTERVAL    cap of the keeper polling backoff [60s]
  SPIKE_NEXUS_KEEPER_TIMEOUT           time limit of one keeper call [5s]
  SPIKE_NEXUS_RESTORE_TIMEOUT          partial restore shards expire after [15m]
  SPIKE_NEXUS_MAX_SECRET_VERSIONS      versions kept per secret [10]
  SPIKE_NEXUS_CRYPTO_MAX_CIPHERTEXT_SIZE  cipher size limit in bytes [65536]
  SPIKE_NEXUS_MAX_REQUEST_BYTES        request body limit [1048576]
  SPIKE_NEXUS_KEY_MAX_ENCRYPTIONS      encryptions per data key before a new term [3865470566]
  SPIKE_NEXUS_KEY_ROTATION_PERIOD      new data-key term after this age [0: never]
  SPIKE_NEXUS_REENCRYPT_RATE           paths per second a re-encryption looks at [1000]
  SPIKE_NEXUS_REKEY_TIMEOUT            time keepers have to take a rekey's shards [30s]
  SPIKE_NEXUS_AUDIT_LOG                audit log file, reopened on SIGHUP [stderr]
  SPIKE_HTTP_SERVER_READ_HEADER_TIMEOUT  time to send request headers [10s]
  SPIKE_HTTP_SERVER_REQUEST_TIMEOUT    time to send a whole request [60s]
  SPIKE_HTTP_SERVER_REFUSAL_LOG_INTERVAL  refused connections: one line per
                                       source, then a count per interval [60s]
  SPIKE_SVID_DIR / SPIFFE_ENDPOINT_SOCKET  where the SVID comes from
  SPIKE_FEDERATED_BUNDLES              with SPIKE_SVID_DIR: federated bundles,
                                       <trust domain>=<PEM file>,...
  SPIKE_TRUST_ROOT                     trust domain of SPIKE's roles [this
                                       SVID's own]
  SPIKE_SYSTEM_LOG_LEVEL               DEBUG, INFO, WARN, ERROR [WARN]
`;

/**
 * Runs nexus until SIGINT/SIGTERM.
 *
 * @param args command-line arguments after `nexus`
 * @returns the exit code
 */
export async function main(args: string[]): Promise<number> {
  if (args[0] === "restore-backup") {
    const { restoreBackup } = await import("./backup/restore.ts");
    return await restoreBackup(args.slice(1));
  }
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

// The stored policies that pass their integrity check. A policy that fails
// it grants nothing; a policy set that fails it leaves no policy granting
// anything (the superuser still works and sees the error on every policy
// call) rather than keeping nexus locked.
async function loadPolicies(
  store: NexusStore,
  report: (message: string, policy?: string) => void,
): Promise<{ generation: number; records: PolicyRecord[] }> {
  try {
    return await store.policies.loadPolicySnapshot((name, e) =>
      report(`${e.message}; it grants nothing`, name)
    );
  } catch (e) {
    if (!(e instanceof IntegrityError)) throw e;
    report(`${e.message}; no policy grants anything`);
    const set = await store.backend.readPolicySet();
    return { generation: set?.generation ?? 0, records: [] };
  }
}

// A store split differently from what this nexus is configured for keeps
// its split until a rekey applies the configured one: until then nexus
// recovers from, and pushes to, the keepers of the store's split (the
// first entries of SPIKE_NEXUS_KEEPER_PEERS).
function warnSplit(meta: StoreMeta, config: NexusConfig, log: Logger): void {
  if (
    meta.shareCount === config.shares && meta.threshold === config.threshold
  ) {
    return;
  }
  log.warn(
    "The store's root key is split differently from the configuration: run spike pilot operator rekey to apply it",
    {
      store: `${meta.threshold} of ${meta.shareCount}`,
      configured: `${config.threshold} of ${config.shares}`,
    },
  );
}

async function run(config: NexusConfig, log: Logger): Promise<number> {
  using source = await openSvidSource();
  const own = source.current().id;
  const notNexus = ownRoleProblem(own, "nexus", "nexus");
  if (notNexus !== undefined) {
    console.error(notNexus);
    return 1;
  }
  const unpinnable = config.keeperPeers.find((peer) =>
    peer.spiffeId !== undefined && !hasRole(peer.spiffeId, "keeper")
  );
  if (unpinnable !== undefined) {
    console.error(
      `SPIKE_NEXUS_KEEPER_PEERS pins ${unpinnable.spiffeId} for ${unpinnable.url}, which is not a keeper identity here: keepers are trusted in ${
        describeTrustRoots("keeper")
      }`,
    );
    return 2;
  }
  const store = await openStore({
    backend: config.backend,
    dataDir: config.backend === "sqlite" ? resolveDataDir() : undefined,
    postgres: config.replica && poolSettings(config.replica, source),
    maxVersions: config.maxSecretVersions,
    log,
    keyLimits: {
      maxEncryptions: config.keyMaxEncryptions,
      rotationPeriodMs: config.keyRotationPeriodMs,
    },
    reencryptRate: config.reencryptRate,
  });
  let meta: StoreMeta | undefined = await store.readMeta();
  if (meta && config.backend !== "memory") warnSplit(meta, config, log);
  // The chain goes on from the audit file's last line, or from the head
  // the store anchored (not verified yet: that needs the key) when the file
  // lost lines or audit lines go to stderr.
  const stored = await store.backend.readAuditAnchor(
    config.replica?.name ?? "",
  ).catch(() => undefined);
  const audit = await AuditLog.open(config.auditLog, stored);
  // Lines the dispatcher does not write (refused connections, requests the
  // server answers itself, policies failing their check); a line that
  // cannot be written is logged. The server's own answers wait for theirs.
  const auditQueued = (record: AuditRecord) =>
    audit.write(record).catch((e) =>
      log.error("Audit line not written", {
        error: e instanceof Error ? e.name : "unknown",
      })
    );
  const engine = config.replica
    ? new ReplicatedPolicyEngine()
    : new PolicyEngine();
  const reloadPolicies = async (): Promise<number> => {
    const { generation, records } = await loadPolicies(
      store,
      (message, policy) => {
        log.warn(message, policy === undefined ? {} : { policy });
        void auditQueued({
          trail: newTrailId(),
          caller: null,
          route: "",
          action: "load-policies",
          resource: policy ?? null,
          outcome: "error",
          status: 0,
          err: ErrorCode.Integrity,
          durationMs: 0,
        });
      },
    );
    for (const p of engine.load(records)) {
      log.error("Stored policy is invalid; it grants nothing", { ...p });
    }
    return generation;
  };
  const guard = new RollbackGuard(store, log);
  const anchors = new AuditAnchors(
    store,
    audit,
    config.replica?.name ?? "",
    log,
  );
  // Assigned below, once the push loop exists.
  let replication: Replication | undefined;
  const state = new RootKeyState(async (keys) => {
    try {
      await store.unlock(keys);
      // Unlocking may finish or drop an interrupted rekey.
      meta = await store.readMeta();
    } catch (e) {
      // A failed migration or a damaged keyring: the operator needs the
      // sentence (these messages name paths and rules, never values).
      log.error("The store cannot be unlocked", {
        error: e instanceof Error ? e.name : "unknown",
        msg: e instanceof StoreError || e instanceof IntegrityError
          ? e.message
          : undefined,
      });
      throw e;
    }
    // Before anything is served: the store against the checkpoints of the
    // keepers that answered (those whose shards rebuilt the key among them).
    guard.settle(keepers?.checkpoints() ?? []);
    await anchors.settle(guard.keeperAudit);
    if (replication) await replication.activate();
    else await reloadPolicies();
  });
  const keepers = config.backend !== "memory"
    ? new Keepers(
      config.keeperPeers,
      (peer) =>
        createMtlsClient({
          source,
          authorizeServer: (id) => {
            const verdict = authorizeKeeper(peer, id);
            if (verdict !== true && hasRole(id, "keeper")) {
              log.warn("A keeper presented another SPIFFE ID than pinned", {
                url: peer.url,
                pinned: peer.spiffeId,
                presented: id.uri,
              });
            }
            return verdict;
          },
          timeoutMs: config.keeperTimeoutMs,
        }),
      config.keeperTimeoutMs,
    )
    : undefined;
  const abort = new AbortController();
  // The key in memory must be the one the store needs: with replicas,
  // another replica may have replaced it (rekey). Such a replica stops, and
  // recovers the new key from the keepers when its supervisor starts it.
  const keyIsCurrent = async (): Promise<boolean> => {
    const current = await store.readMeta();
    if (!current) return false;
    return await state.withKey(async (key) =>
      verifyKeyCheck(
        await derivePurposeKeys(
          key as Uint8Array<ArrayBuffer>,
          current.storeId,
        ),
        current.keyCheck,
      )
    );
  };
  const onStaleKey = () => {
    log.error(
      "The store's root key was replaced by another replica (rekey): this replica stops, to recover the new key from the keepers when it starts again",
    );
    console.error(
      "The store's root key was replaced by another replica: stopping to recover it",
    );
    Deno.exit(1);
  };
  const sync = keepers
    ? new KeeperSync({
      keepers,
      state,
      meta: () => meta,
      intervalMs: config.keeperUpdateIntervalMs,
      allowThresholdOne: config.allowThresholdOne,
      checkpoint: async () => {
        // PostgreSQL: the writes the replicas logged go into the digest.
        await store.fold().catch((e) =>
          log.error("Store digest not folded", { error: (e as Error).name })
        );
        // Replicas keep one audit chain each: their anchors stay in the
        // store, keyed by replica name.
        return guard.checkpoint(config.replica ? undefined : anchors.newest);
      },
      // With replicas, the push-loop leader pushes (a restore pushes too).
      leads: () => replication?.isLeader ?? true,
      keyIsCurrent,
      onStaleKey,
      log,
    })
    : undefined;
  // Each burst of writes reaches the keepers' checkpoints within the delay.
  store.onCommit(() => sync?.soon(config.checkpointDelayMs));
  // Audit lines are anchored in the store as soon, and reach the keepers
  // with the next checkpoint.
  audit.afterWrite = () => anchors.soon(config.checkpointDelayMs);
  // Pushes, rekeys and recovery exports take turns: none may split a key
  // another is replacing.
  const exclusive = <T>(task: () => Promise<T>) =>
    sync ? sync.exclusive(task) : task();
  if (config.replica && store.backend instanceof PostgresBackend) {
    const active = new Replication({
      backend: store.backend,
      config: config.replica,
      port: config.listen.port,
      unlocked: () => state.unlocked,
      reload: reloadPolicies,
      onLeader: () =>
        void sync?.pushNow("became the push leader").catch((e) =>
          log.error("Shard push failed", { error: (e as Error).name })
        ),
      log,
    });
    (engine as ReplicatedPolicyEngine).onLocalChange = () =>
      active.policiesChanged();
    replication = active;
  }
  const restore = new RestoreSession(
    state,
    () => meta,
    config.restoreTimeoutMs,
    config.allowThresholdOne,
  );
  const data = dataRoutes({ config, store, engine });
  const lifecycleDeps = {
    store,
    state,
    keepers,
    meta: () => meta,
    setMeta: (next: StoreMeta) => meta = next,
    config,
    exclusive,
    // With replicas only the push leader may rekey: no other replica
    // pushes meanwhile, and it pushes the new key at once afterwards.
    rekeyRefusal: () =>
      replication && !replication.isLeader
        ? "With replicas, run the rekey on the replica that leads the push loop (spike pilot status marks it)"
        : undefined,
    log,
  };
  const routes = new Map<string, Route>([
    ...[
      ...operatorRoutes({
        state,
        meta: () => meta,
        restore,
        keepers,
        backend: config.backend,
        allowThresholdOne: config.allowThresholdOne,
        push: sync && ((why: string) => sync.pushNow(why)),
        replicas: replication && (() => replication!.replicas()),
        exclusive,
        recoveryExported: () =>
          store.keys.recordRecoveryExport().catch((e) =>
            log.warn("Cannot record the recovery export in the store", {
              error: (e as Error).message,
            })
          ),
        lifecycleStatus: () => lifecycleStatus(lifecycleDeps),
        guard,
        check: () => store.check(),
        auditAnchor: () => ({ anchor: anchors.newest, head: audit.head }),
      }),
      ...lifecycleRoutes(lifecycleDeps),
    ].map(([path, route]): [string, Route] => [routeKey(path), route]),
    ...data,
  ]);
  const server = await serveMtls({
    source,
    hostname: config.listen.host,
    port: config.listen.port,
    maxBodyBytes: config.maxBodyBytes,
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    refusalIntervalMs: config.refusalIntervalMs,
    authorizePeer: () => true,
    handler: createDispatcher({
      routes,
      // A store that fails its digest or is older than the keepers'
      // checkpoint is held: its key is known, its data is not served. A
      // replica that cannot confirm its policies are current (cut off from
      // the database) answers 503 rather than use stale grants.
      isUnlocked: () =>
        state.unlocked && guard.serving && (replication?.serving ?? true),
      heldReason: () => state.unlocked ? guard.status()?.reason : undefined,
      audit,
      log,
    }),
    // The server logs these, one line per source and interval, plus a count.
    onRefused: (reason, peer, count) => {
      void auditQueued({
        trail: "tls",
        caller: peer,
        route: "",
        action: "handshake",
        resource: null,
        outcome: "denied",
        status: 0,
        err: reason,
        durationMs: 0,
        ...(count === undefined ? {} : { count }),
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
      return auditQueued({
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
  // SIGHUP reopens the audit file, for logrotate (and would otherwise kill).
  const reopenAudit = () => void audit.reopen(log);
  Deno.addSignalListener("SIGHUP", reopenAudit);
  console.error(`SPIKE nexus ${own.uri} listening on port ${server.port}`);
  log.info("Nexus listening", { port: server.port, backend: config.backend });
  replication?.start();
  // Replicas learn here of a rekey (and stop), or of a rotation (and seal
  // with the new term from then on).
  const keyWatch = config.replica
    ? setInterval(() => {
      if (!state.unlocked) return;
      keyIsCurrent().then((ok) => ok ? store.keys.refresh() : onStaleKey())
        .catch(() => {});
    }, 10_000)
    : undefined;
  if (keyWatch !== undefined) Deno.unrefTimer(keyWatch);

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
    let created = false;
    if (!meta && store.backend instanceof PostgresBackend) {
      const shared = await startSharedStore({
        backend: store.backend,
        config,
        state,
        keepers: keepers!,
        log,
        signal: abort.signal,
      });
      if (!shared) return;
      warnSplit(shared.meta, config, log);
      meta = shared.meta;
      created = shared.created;
      if (created) log.info("New store initialized with a fresh root key");
    } else if (!meta) {
      meta = await initializeNewStore({
        store,
        config,
        state,
        keepers: keepers!,
        log,
        signal: abort.signal,
      });
      if (!meta) return;
      created = true;
      log.info("New store initialized with a fresh root key");
    }
    if (created) {
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
      // Shards of a rekey a crash interrupted, on keepers beyond the split.
      if (meta) {
        const forgotten = await forgetStrayShards(keepers!, meta);
        if (forgotten > 0) {
          log.warn("Keepers beyond the store's split dropped stray shards", {
            keepers: forgotten,
          });
        }
      }
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
  clearInterval(keyWatch);
  await lifecycle;
  await server.close();
  await replication?.close();
  keepers?.close();
  // The last line anchored, so a restart on an emptied or rotated file
  // goes on from it exactly.
  if (state.unlocked) anchors.anchor();
  await store.close();
  Deno.removeSignalListener("SIGHUP", reopenAudit);
  audit.close();
  restore.clear();
  state.clear();
  return 0;
}
