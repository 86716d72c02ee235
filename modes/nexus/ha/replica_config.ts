// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The settings of a nexus replica on the postgres backend: the database
 * connection, the pool and its timeouts, and how often the replica checks
 * that its policies are current.
 *
 * @module
 */
import {
  ConfigError,
  envInt,
  envPositiveDuration,
  envString,
} from "../../../lib/config/env.ts";
import {
  type DatabaseSettings,
  readDatabaseSettings,
} from "../../../lib/config/database_url.ts";

/** Everything the postgres backend reads from the environment. */
export interface ReplicaConfig {
  /** Where and as whom. */
  readonly database: DatabaseSettings;
  /** Connections in the pool. */
  readonly poolSize: number;
  /** `statement_timeout`, ms. */
  readonly statementTimeoutMs: number;
  /** `idle_in_transaction_session_timeout`, ms. */
  readonly idleTransactionTimeoutMs: number;
  /** Period of the policy generation check (and of the presence beat), ms. */
  readonly policyCheckIntervalMs: number;
  /** How often the push leader prunes the write fence, ms. */
  readonly fencePruneIntervalMs: number;
  /** A name for this replica in `pilot status` ("" when unset). */
  readonly name: string;
}

/**
 * Reads the postgres backend's settings.
 *
 * @returns the settings
 * @throws {ConfigError} naming the first invalid variable
 */
export function readReplicaConfig(): ReplicaConfig {
  const database = readDatabaseSettings((name) => {
    const value = Deno.env.get(name)?.trim();
    return value ? value : undefined;
  });
  const statementTimeoutMs = envPositiveDuration(
    "SPIKE_NEXUS_DATABASE_STATEMENT_TIMEOUT",
    10_000,
  );
  const idleTransactionTimeoutMs = envPositiveDuration(
    "SPIKE_NEXUS_DATABASE_IDLE_TRANSACTION_TIMEOUT",
    5_000,
  );
  if (idleTransactionTimeoutMs >= statementTimeoutMs) {
    // A writer waiting for a row that a stalled replica holds must outlast
    // the stalled transaction, or it fails instead of going on.
    throw new ConfigError(
      "SPIKE_NEXUS_DATABASE_IDLE_TRANSACTION_TIMEOUT must be shorter than SPIKE_NEXUS_DATABASE_STATEMENT_TIMEOUT",
    );
  }
  const name = envString("SPIKE_NEXUS_REPLICA_NAME", "");
  const printable = [...name].every((c) => c >= " " && c !== "\x7f");
  if (name.length > 100 || !printable) {
    throw new ConfigError(
      "SPIKE_NEXUS_REPLICA_NAME must be at most 100 printable characters",
    );
  }
  return {
    database,
    poolSize: envInt("SPIKE_NEXUS_DATABASE_POOL_SIZE", 10, {
      min: 1,
      max: 100,
    }),
    statementTimeoutMs,
    idleTransactionTimeoutMs,
    policyCheckIntervalMs: envPositiveDuration(
      "SPIKE_NEXUS_POLICY_CHECK_INTERVAL",
      1_000,
    ),
    fencePruneIntervalMs: envPositiveDuration(
      "SPIKE_NEXUS_WRITE_FENCE_PRUNE_INTERVAL",
      5 * 60_000,
    ),
    name,
  };
}
