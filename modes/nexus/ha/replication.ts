// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * What makes a nexus process one replica among several on a shared
 * PostgreSQL store: its presence and the push-loop leadership
 * (`presence.ts`), and coherent policies (`policy_sync.ts`). The root key
 * is each replica's own, recovered from the keepers.
 *
 * @module
 */
import type { Logger } from "../../../lib/log.ts";
import type { SvidSource } from "../../../lib/spiffe/source.ts";
import type { PoolSettings } from "../store/postgres_connect.ts";
import type { PostgresBackend } from "../store/postgres_backend.ts";
import { type PolicyReload, PolicySync } from "./policy_sync.ts";
import { Presence, type ReplicaView } from "./presence.ts";
import type { ReplicaConfig } from "./replica_config.ts";

/**
 * The pool settings of a replica.
 *
 * @param config the replica settings
 * @param source nexus's SVID source (a client certificate may be the SVID)
 * @returns the settings
 */
export function poolSettings(
  config: ReplicaConfig,
  source: SvidSource,
): PoolSettings {
  return {
    database: config.database,
    max: config.poolSize,
    statementTimeoutMs: config.statementTimeoutMs,
    idleInTransactionTimeoutMs: config.idleTransactionTimeoutMs,
    source,
  };
}

/** The replica side of one nexus process. */
export class Replication {
  readonly #presence: Presence;
  readonly #sync: PolicySync;
  readonly #backend: PostgresBackend;
  readonly #pruneMs: number;
  readonly #log: Logger;
  #pruneTimer: ReturnType<typeof setInterval> | undefined;

  /**
   * Opens the replica's own connections (presence, listener).
   *
   * @param options the backend, settings, listen port, lock state, how to
   * reload policies, what to do on becoming the leader, and the logger
   */
  constructor(options: {
    backend: PostgresBackend;
    config: ReplicaConfig;
    port: number;
    unlocked: () => boolean;
    reload: PolicyReload;
    onLeader: () => void;
    log: Logger;
  }) {
    const { backend, config, log } = options;
    this.#backend = backend;
    this.#pruneMs = config.fencePruneIntervalMs;
    this.#log = log;
    this.#presence = new Presence({
      pool: backend.settings,
      beatMs: config.policyCheckIntervalMs,
      name: config.name,
      port: options.port,
      unlocked: options.unlocked,
      onLeadership: (leader) => {
        if (leader) options.onLeader();
      },
      log,
    });
    this.#sync = new PolicySync({
      pool: backend.settings,
      generation: () => backend.policyGeneration(),
      reload: options.reload,
      intervalMs: config.policyCheckIntervalMs,
      log,
    });
  }

  /**
   * Starts the presence beat (locked replicas are listed too), and the
   * write fence pruning, which the push leader does.
   */
  start(): void {
    this.#presence.start();
    this.#pruneTimer = setInterval(() => {
      if (!this.#presence.isLeader) return;
      this.#backend.pruneWriteFence().then(
        (dropped) => this.#log.debug("Write fence pruned", { dropped }),
        (e) =>
          this.#log.warn("Pruning the write fence failed", {
            error: e instanceof Error ? e.message : "unknown",
          }),
      );
    }, this.#pruneMs);
  }

  /** Loads the policies and keeps them current; call once unlocked. */
  activate(): Promise<void> {
    return this.#sync.start();
  }

  /** Reloads the policies soon (after a local policy write). */
  policiesChanged(): void {
    this.#sync.reloadSoon();
  }

  /** Whether this replica may answer data routes: its policies are current. */
  get serving(): boolean {
    return this.#sync.fresh;
  }

  /** Whether this replica leads the keeper push loop. */
  get isLeader(): boolean {
    return this.#presence.isLeader;
  }

  /** Every replica the database knows, with the push leader. */
  replicas(): Promise<ReplicaView[]> {
    return this.#presence.replicas();
  }

  /** Closes the replica's connections. */
  async close(): Promise<void> {
    clearInterval(this.#pruneTimer);
    await Promise.all([this.#presence.close(), this.#sync.close()]);
  }
}
