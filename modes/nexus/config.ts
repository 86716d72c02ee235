// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Nexus configuration from the environment. Every invalid value stops the
 * start with a sentence naming the variable; nothing silently falls back.
 *
 * @module
 */
import {
  ConfigError,
  envBool,
  envInt,
  envPositiveDuration,
  envString,
  parseListenAddress,
} from "../../lib/config/env.ts";
import { checkSharedConfig } from "../../lib/config/shared.ts";
import {
  readServerTimeouts,
  type ServerTimeouts,
} from "../../lib/config/server_timeouts.ts";
import { resolveDataDir } from "./store/data_dir.ts";
import { readReplicaConfig, type ReplicaConfig } from "./ha/replica_config.ts";
import {
  type LifecycleConfig,
  readLifecycleConfig,
} from "./lifecycle_config.ts";
import {
  parseSpiffeId,
  type SpiffeId,
  SpiffeIdError,
} from "../../lib/spiffe/id.ts";
import { ROLE_PATHS } from "../../lib/spiffe/roles.ts";

/** Where nexus keeps its data. */
export type Backend = "sqlite" | "postgres" | "memory";

/** Everything nexus reads from its environment. */
export interface NexusConfig extends ServerTimeouts, LifecycleConfig {
  /** Listen host ("" = all interfaces) and port. */
  readonly listen: { host: string; port: number };
  /** The store backend. */
  readonly backend: Backend;
  /** The keepers; keeper i (1-based) holds share i. */
  readonly keeperPeers: readonly KeeperPeer[];
  /** Number of shares (equals the number of keepers). */
  readonly shares: number;
  /** Shares needed to rebuild the root key. */
  readonly threshold: number;
  /** Development only: allow threshold 1 (every keeper holds the whole key). */
  readonly allowThresholdOne: boolean;
  /** Period of the shard push to keepers, ms. */
  readonly keeperUpdateIntervalMs: number;
  /** Cap of the recovery polling backoff, ms. */
  readonly recoveryMaxIntervalMs: number;
  /** Time limit of one call to a keeper, ms. */
  readonly keeperTimeoutMs: number;
  /** Partial restore shards are forgotten after this much inactivity, ms. */
  readonly restoreTimeoutMs: number;
  /** Versions kept per secret. */
  readonly maxSecretVersions: number;
  /** Largest cipher plaintext / ciphertext in bytes. */
  readonly maxCipherBytes: number;
  /** Largest request body in bytes. */
  readonly maxBodyBytes: number;
  /** The audit log file; undefined means stderr. */
  readonly auditLog: string | undefined;
  /** The database and replica settings (postgres backend). */
  readonly replica: ReplicaConfig | undefined;
}

/** One keeper of `SPIKE_NEXUS_KEEPER_PEERS`. */
export interface KeeperPeer {
  /** The keeper's base URL, e.g. `https://keeper-1:8443`. */
  readonly url: string;
  /**
   * The SPIFFE ID the keeper must present, when pinned
   * (`https://keeper-1:8443#spiffe://example.org/spike/keeper/1`); else any
   * keeper identity is accepted at this URL.
   */
  readonly spiffeId: string | undefined;
}

const PEERS = "SPIKE_NEXUS_KEEPER_PEERS";

/** Checks a pinned SPIFFE ID: valid, and a keeper ID by its path. */
function pinnedId(entry: string, pin: string): string {
  let id: SpiffeId;
  try {
    id = parseSpiffeId(pin);
  } catch (e) {
    if (!(e instanceof SpiffeIdError)) throw e;
    throw new ConfigError(
      `${PEERS} entry "${entry}" pins "${pin}", which is not a SPIFFE ID: ${e.message}`,
    );
  }
  const base = ROLE_PATHS.keeper;
  if (id.path !== base && !id.path.startsWith(`${base}/`)) {
    throw new ConfigError(
      `${PEERS} entry "${entry}" pins "${pin}", which is not a keeper ID: pin spiffe://<trust domain>${base}/<name>`,
    );
  }
  return id.uri;
}

function parsePeers(raw: string): KeeperPeer[] {
  const peers: KeeperPeer[] = [];
  const seen = new Set<string>();
  const pins = new Set<string>();
  for (const entry of raw.split(",").map((p) => p.trim())) {
    if (entry === "") {
      throw new ConfigError(
        `${PEERS} has an empty entry: give comma-separated https URLs`,
      );
    }
    const hash = entry.indexOf("#");
    const peer = hash < 0 ? entry : entry.slice(0, hash);
    let url: URL;
    try {
      url = new URL(peer);
    } catch {
      throw new ConfigError(`${PEERS} entry "${entry}" is not a URL`);
    }
    if (url.protocol !== "https:" || url.hostname === "") {
      throw new ConfigError(
        `${PEERS} entry "${entry}" must be an https URL with a host`,
      );
    }
    const key = url.origin;
    if (seen.has(key)) {
      throw new ConfigError(
        `${PEERS} lists "${peer}" twice: each keeper holds its own share`,
      );
    }
    seen.add(key);
    const spiffeId = hash < 0
      ? undefined
      : pinnedId(entry, entry.slice(hash + 1));
    if (spiffeId !== undefined) {
      if (pins.has(spiffeId)) {
        throw new ConfigError(
          `${PEERS} pins ${spiffeId} twice: each keeper has its own identity`,
        );
      }
      pins.add(spiffeId);
    }
    peers.push({ url: peer.replace(/\/+$/, ""), spiffeId });
  }
  return peers;
}

/**
 * Reads and checks the nexus configuration, including the variables every
 * mode shares (log level, trust roots, SVID source) and, for the sqlite
 * backend, the data directory.
 *
 * @returns the configuration
 * @throws {ConfigError} naming the first invalid variable
 */
export function readNexusConfig(): NexusConfig {
  checkSharedConfig();
  const backendRaw = envString("SPIKE_NEXUS_BACKEND_STORE", "sqlite")
    .toLowerCase();
  if (
    backendRaw !== "sqlite" && backendRaw !== "postgres" &&
    backendRaw !== "memory"
  ) {
    throw new ConfigError(
      `SPIKE_NEXUS_BACKEND_STORE must be sqlite, postgres or memory, got "${backendRaw}"`,
    );
  }
  const backend: Backend = backendRaw;
  const persistent = backend !== "memory";
  const peersRaw = envString("SPIKE_NEXUS_KEEPER_PEERS", "");
  if (persistent && peersRaw === "") {
    throw new ConfigError(
      `SPIKE_NEXUS_KEEPER_PEERS is required with the ${backend} backend: comma-separated keeper URLs, e.g. https://keeper-1:8443,https://keeper-2:8443,https://keeper-3:8443`,
    );
  }
  const keeperPeers = peersRaw === "" ? [] : parsePeers(peersRaw);
  const shares = envInt("SPIKE_NEXUS_SHAMIR_SHARES", 3, { min: 1, max: 255 });
  const threshold = envInt("SPIKE_NEXUS_SHAMIR_THRESHOLD", 2, {
    min: 1,
    max: 255,
  });
  const allowThresholdOne = envBool("SPIKE_NEXUS_ALLOW_THRESHOLD_ONE", false);
  if (persistent) {
    if (shares !== keeperPeers.length) {
      throw new ConfigError(
        `SPIKE_NEXUS_SHAMIR_SHARES is ${shares} but SPIKE_NEXUS_KEEPER_PEERS lists ${keeperPeers.length} keepers: these must match`,
      );
    }
    if (threshold > shares) {
      throw new ConfigError(
        `SPIKE_NEXUS_SHAMIR_THRESHOLD (${threshold}) cannot exceed SPIKE_NEXUS_SHAMIR_SHARES (${shares})`,
      );
    }
    if (threshold === 1 && !allowThresholdOne) {
      throw new ConfigError(
        "SPIKE_NEXUS_SHAMIR_THRESHOLD is 1, which gives every keeper the whole root key: use 2 or more, or set SPIKE_NEXUS_ALLOW_THRESHOLD_ONE=true for development",
      );
    }
  }
  // Zero would push without pause, give every keeper call no time, poll
  // keepers in a hot loop, or forget restore shards at once.
  const keeperUpdateIntervalMs = envPositiveDuration(
    "SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL",
    300_000,
  );
  const recoveryMaxIntervalMs = envPositiveDuration(
    "SPIKE_NEXUS_RECOVERY_MAX_INTERVAL",
    60_000,
  );
  const keeperTimeoutMs = envPositiveDuration(
    "SPIKE_NEXUS_KEEPER_TIMEOUT",
    5_000,
  );
  const restoreTimeoutMs = envPositiveDuration(
    "SPIKE_NEXUS_RESTORE_TIMEOUT",
    900_000,
  );
  if (backend === "sqlite") resolveDataDir();
  const replica = backend === "postgres" ? readReplicaConfig() : undefined;
  const auditLog = envString("SPIKE_NEXUS_AUDIT_LOG", "");
  return {
    listen: parseListenAddress(
      "SPIKE_NEXUS_TLS_PORT",
      envString("SPIKE_NEXUS_TLS_PORT", ":8553"),
    ),
    backend,
    keeperPeers,
    shares,
    threshold,
    allowThresholdOne,
    keeperUpdateIntervalMs,
    recoveryMaxIntervalMs,
    keeperTimeoutMs,
    restoreTimeoutMs,
    maxSecretVersions: envInt("SPIKE_NEXUS_MAX_SECRET_VERSIONS", 10, {
      min: 1,
      max: 1000,
    }),
    maxCipherBytes: envInt("SPIKE_NEXUS_CRYPTO_MAX_CIPHERTEXT_SIZE", 65_536),
    maxBodyBytes: envInt("SPIKE_NEXUS_MAX_REQUEST_BYTES", 1_048_576),
    auditLog: auditLog === "" ? undefined : auditLog,
    replica,
    ...readServerTimeouts(),
    ...readLifecycleConfig(),
  };
}
