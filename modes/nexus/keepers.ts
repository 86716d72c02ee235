// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Nexus's side of the keeper protocol: fetch a keeper's shards, push a
 * keeper its shard (current, or pending during a rekey), make a keeper
 * forget its shards, and remember what each keeper did last, for status.
 *
 * @module
 */
import type { MtlsClient } from "../../lib/mtls/client.ts";
import type { SpiffeId } from "../../lib/spiffe/id.ts";
import { hasRole } from "../../lib/spiffe/roles.ts";
import type { KeeperPeer } from "./config.ts";
import type { Shard } from "../../lib/shard/mod.ts";
import { zero } from "../../lib/crypto/zero.ts";
import {
  JsonBytesWriter,
  type JsonValue,
  parseJsonBytes,
  takeShardArray,
} from "../../lib/wire/json_bytes.ts";

/**
 * The largest keeper answer read: a shard answer is about 140 bytes and
 * every other answer is shorter, so anything longer is hostile or broken.
 */
export const KEEPER_ANSWER_LIMIT = 4096;

/** What nexus knows about one keeper. */
export interface KeeperStatus {
  /** The keeper's 1-based position in SPIKE_NEXUS_KEEPER_PEERS = its share index. */
  readonly index: number;
  /** The keeper's base URL. */
  readonly url: string;
  /** Whether the last call reached the keeper. */
  reachable: boolean | null;
  /** Whether the keeper is known to hold its verified share. */
  holdsShard: boolean | null;
  /** When nexus last pushed the share successfully (ISO time). */
  lastPush: string | null;
  /** The last failure, without data. */
  lastError: string | null;
}

/**
 * One line naming each keeper and why it lacks its share, e.g.
 * `keeper 2 (https://k2:8443): connect ECONNREFUSED 10.0.0.2:8443`.
 *
 * @param keepers the keepers
 * @returns the line
 */
export function describeKeepers(keepers: readonly KeeperStatus[]): string {
  return keepers.map((k) =>
    `keeper ${k.index} (${k.url}): ${
      k.lastError ?? (k.reachable === null ? "not asked yet" : "no answer")
    }`
  ).join("; ");
}

/**
 * Whether a server may stand in for a keeper: it must carry the keeper
 * role, and be the pinned SPIFFE ID when the peer pins one.
 *
 * @param peer the configured keeper
 * @param id the server's verified SPIFFE ID
 * @returns true, or why not
 */
export function authorizeKeeper(
  peer: KeeperPeer,
  id: SpiffeId,
): true | string {
  if (!hasRole(id, "keeper")) return "not a keeper identity";
  if (peer.spiffeId !== undefined && id.uri !== peer.spiffeId) {
    return `keeper ${peer.url} is pinned to ${peer.spiffeId}`;
  }
  return true;
}

/** Talks to the configured keepers. */
export class Keepers {
  readonly #clients: MtlsClient[];
  readonly #timeoutMs: number;
  /** Status per keeper, in configuration order. */
  readonly statuses: KeeperStatus[];

  /**
   * @param peers the keepers; keeper i holds share i
   * @param clientFor makes the mTLS client of one keeper, which accepts
   *   only that keeper (see {@linkcode authorizeKeeper})
   * @param timeoutMs time limit per call
   */
  constructor(
    peers: readonly KeeperPeer[],
    clientFor: (peer: KeeperPeer) => MtlsClient,
    timeoutMs: number,
  ) {
    this.#clients = peers.map(clientFor);
    this.#timeoutMs = timeoutMs;
    this.statuses = peers.map((peer, i) => ({
      index: i + 1,
      url: peer.url,
      reachable: null,
      holdsShard: null,
      lastPush: null,
      lastError: null,
    }));
  }

  /** Drops every keeper connection. */
  close(): void {
    for (const client of this.#clients) client.close();
  }

  #failed(status: KeeperStatus, reason: string, reachable: boolean) {
    status.reachable = reachable;
    // What an unreachable keeper holds is unknown, not what it held before.
    if (!reachable) status.holdsShard = null;
    status.lastError = reason;
    return undefined;
  }

  /**
   * Asks keeper `position` for its shards: the current one and, during a
   * rekey, the pending one.
   *
   * @param position 1-based position in SPIKE_NEXUS_KEEPER_PEERS
   * @returns the shards, current first (the caller zeroes each `value`);
   * empty when the keeper is unreachable, holds none, or answers garbage.
   * A shard's index is the one the keeper says it holds, when that is a
   * share index of this list, so a reordered list still finds every
   * share; otherwise the position.
   */
  async fetchShards(position: number): Promise<Shard[]> {
    const status = this.statuses[position - 1]!;
    let body: Uint8Array | undefined;
    try {
      const res = await this.#clients[position - 1]!.post(
        `${status.url}/v1/store/shard`,
        "{}",
        { timeoutMs: this.#timeoutMs, maxResponseBytes: KEEPER_ANSWER_LIMIT },
      );
      body = res.body;
      if (res.status === 404) {
        status.holdsShard = false;
        this.#failed(status, "Keeper holds no shard", true);
        return [];
      }
      if (res.status !== 200) {
        this.#failed(status, `Keeper answered ${res.status}`, true);
        return [];
      }
      const parsed = parseJsonBytes(body, { plainIntegers: true });
      const answer = objectOf(parsed);
      const pending = objectOf(answer?.pending);
      const shards = [answer, pending].flatMap((held) => {
        const value = takeShardArray(held?.shard);
        return value
          ? [{ index: this.#indexOf(held?.index, position), value }]
          : [];
      });
      if (shards.length === 0) {
        this.#failed(status, "Keeper answered a malformed shard", true);
        return [];
      }
      status.reachable = true;
      status.lastError = null;
      return shards;
    } catch (e) {
      this.#failed(status, (e as Error).message, false);
      return [];
    } finally {
      zero(body);
    }
  }

  #indexOf(held: JsonValue | undefined, position: number): number {
    const known = typeof held === "number" && Number.isInteger(held) &&
      held >= 1 && held <= this.statuses.length;
    return known ? held : position;
  }

  /**
   * Pushes keeper `shard.index` its shard as its current one (which drops
   * a pending one it holds).
   *
   * @param shard the shard for that keeper (not zeroed here)
   * @returns whether the keeper stored it
   */
  async pushShard(shard: Shard): Promise<boolean> {
    const stored = await this.#contribute(shard.index, "", shard);
    if (stored) {
      const status = this.statuses[shard.index - 1]!;
      status.holdsShard = true;
      status.lastPush = new Date().toISOString();
    }
    return stored;
  }

  /**
   * Pushes keeper `shard.index` the shard of a rekey's new root key, held
   * beside its current shard until a current push replaces both.
   *
   * @param shard the new key's shard for that keeper (not zeroed here)
   * @returns whether the keeper stored it
   */
  pushPending(shard: Shard): Promise<boolean> {
    return this.#contribute(shard.index, "pending", shard);
  }

  /**
   * Makes keeper `position` drop every shard it holds (it left the split).
   *
   * @param position 1-based position in SPIKE_NEXUS_KEEPER_PEERS
   * @returns whether the keeper confirmed
   */
  async forget(position: number): Promise<boolean> {
    const done = await this.#contribute(position, "forget");
    if (done) this.statuses[position - 1]!.holdsShard = false;
    return done;
  }

  async #contribute(
    position: number,
    action: "" | "pending" | "forget",
    shard?: Shard,
  ): Promise<boolean> {
    const status = this.statuses[position - 1]!;
    const body = shard
      ? new JsonBytesWriter().raw('{"shard":').byteArray(shard.value)
        .raw(`,"index":${shard.index}}`).finish()
      : new Uint8Array([0x7b, 0x7d]);
    try {
      const res = await this.#clients[position - 1]!.post(
        `${status.url}/v1/store/contribute${
          action === "" ? "" : `?action=${action}`
        }`,
        body,
        { timeoutMs: this.#timeoutMs, maxResponseBytes: KEEPER_ANSWER_LIMIT },
      );
      if (res.status !== 200) {
        this.#failed(status, `Keeper answered ${res.status}`, true);
        return false;
      }
      status.reachable = true;
      status.lastError = null;
      return true;
    } catch (e) {
      this.#failed(status, (e as Error).message, false);
      return false;
    } finally {
      zero(body);
    }
  }
}

type JsonObject = { [key: string]: JsonValue };

function objectOf(value: JsonValue | undefined): JsonObject | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? value
    : undefined;
}
