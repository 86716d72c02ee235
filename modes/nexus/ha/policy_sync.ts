// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Keeps a replica's compiled policies current with the shared store.
 *
 * Three paths, any of which triggers a full reload (one snapshot of the
 * policy set and every policy row):
 * - a notification: every policy write sends `NOTIFY spike_policy` inside
 *   its transaction, delivered at commit to every replica listening;
 * - a check every `SPIKE_NEXUS_POLICY_CHECK_INTERVAL` of the policy set's
 *   generation against the one loaded, which catches what a lost
 *   notification missed;
 * - a new listening session: notifications sent while the replica was
 *   disconnected are lost, so after every (re)connect it reloads.
 *
 * Staleness bound: a change is enforced on every connected replica once
 * its notification arrives and the reload is done (milliseconds), and at
 * the latest one check interval plus one reload after its commit. A
 * replica that has not confirmed its policies for three intervals
 * (cut off from the database) is not {@linkcode PolicySync.fresh}: nexus
 * then answers 503 on every data route, the cipher included, instead of
 * authorizing against policies that may have been revoked.
 *
 * @module
 */
import type { Logger } from "../../../lib/log.ts";
import { PolicyEngine, type PolicyFields } from "../policy/engine.ts";
import {
  describeDatabaseError,
  openPool,
  type Sql,
} from "../store/postgres_connect.ts";
import type { PoolSettings } from "../store/postgres_connect.ts";
import { POLICY_CHANNEL } from "../store/postgres_schema.ts";

/** Loads every policy into the engine; returns the generation loaded. */
export type PolicyReload = () => Promise<number>;

/**
 * A policy engine that tells its replica about local changes, so a full
 * reload follows each one: an `upsert` that lands after a reload of a
 * newer generation must not linger.
 */
export class ReplicatedPolicyEngine extends PolicyEngine {
  /** Called after every local change. */
  onLocalChange: () => void = () => {};

  /** See {@linkcode PolicyEngine.upsert}. */
  override upsert(record: PolicyFields): void {
    super.upsert(record);
    this.onLocalChange();
  }

  /** See {@linkcode PolicyEngine.remove}. */
  override remove(name: string): boolean {
    const removed = super.remove(name);
    this.onLocalChange();
    return removed;
  }
}

/** What a policy sync needs. */
export interface PolicySyncOptions {
  /** The replica's pool settings (the listener gets a connection of its own). */
  readonly pool: PoolSettings;
  /** Reads the policy set's generation (0 before any policy). */
  readonly generation: () => Promise<number>;
  /** Reloads every policy. */
  readonly reload: PolicyReload;
  /** Check period, ms. */
  readonly intervalMs: number;
  /** Where changes are logged. */
  readonly log: Logger;
}

/** The policy cache coherence of one replica. */
export class PolicySync {
  readonly #options: PolicySyncOptions;
  readonly #listener: Sql;
  #schema: string | undefined;
  #listening = false;
  #loaded = -1;
  #confirmedAt = -Infinity;
  #reloading: Promise<void> | undefined;
  #again = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #checking: Promise<void> | undefined;
  #closed = false;
  #healthy = true;

  /**
   * Opens the listening connection; call {@linkcode start} once the
   * replica has its root key.
   *
   * @param options settings
   */
  constructor(options: PolicySyncOptions) {
    this.#options = options;
    this.#listener = openPool({ ...options.pool, max: 1 }, {
      onnotify: (channel, payload) => this.#notified(channel, payload),
      onclose: () => {
        this.#listening = false;
      },
    });
  }

  /** The generation of the policies held (-1 before the first load). */
  get generation(): number {
    return this.#loaded;
  }

  /**
   * Whether the policies held were confirmed current within three check
   * intervals.
   */
  get fresh(): boolean {
    return performance.now() - this.#confirmedAt <=
      3 * this.#options.intervalMs;
  }

  /** Loads the policies and starts listening and checking. */
  async start(): Promise<void> {
    await this.reloadNow();
    this.#schedule(0);
  }

  /**
   * Reloads now (coalescing with a reload under way) and resolves when the
   * policies held are at least as new as when this was called.
   */
  reloadNow(): Promise<void> {
    if (this.#reloading) {
      this.#again = true;
      return this.#reloading;
    }
    const started = performance.now();
    this.#reloading = this.#options.reload().then((generation) => {
      this.#loaded = generation;
      this.#confirm(started);
    }).finally(() => {
      this.#reloading = undefined;
      if (this.#again && !this.#closed) {
        this.#again = false;
        this.reloadNow().catch((e) => this.#trouble(e));
      }
    });
    return this.#reloading;
  }

  /** Schedules a reload (after a local change). */
  reloadSoon(): void {
    this.reloadNow().catch((e) => this.#trouble(e));
  }

  #confirm(at: number): void {
    this.#confirmedAt = Math.max(this.#confirmedAt, at);
    if (!this.#healthy) {
      this.#healthy = true;
      this.#options.log.warn("Policies confirmed current again");
    }
  }

  #trouble(e: unknown): void {
    if (!this.#healthy) return;
    this.#healthy = false;
    this.#options.log.warn(
      "Cannot confirm the policies are current (database unreachable?); data routes answer 503 after three check intervals",
      { error: describeDatabaseError(e, this.#options.pool.database) },
    );
  }

  #notified(channel: string, payload: string): void {
    if (channel !== POLICY_CHANNEL) return;
    const [schema, generation] = payload.split(" ");
    if (schema !== this.#schema) return;
    if (Number(generation) > this.#loaded) this.reloadSoon();
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#checking = this.#check().finally(() => {
        this.#checking = undefined;
        this.#schedule(this.#options.intervalMs);
      });
    }, ms);
  }

  async #check(): Promise<void> {
    const started = performance.now();
    try {
      if (!this.#listening) {
        const [row] = await this.#listener`SELECT current_schema() AS s`;
        this.#schema = row!.s as string;
        await this.#listener.unsafe(`LISTEN ${POLICY_CHANNEL}`);
        this.#listening = true;
        // What was sent while nobody listened is lost: reload everything.
        await this.reloadNow();
        return;
      }
      const generation = await this.#options.generation();
      if (generation !== this.#loaded) await this.reloadNow();
      else this.#confirm(started);
    } catch (e) {
      this.#trouble(e);
    }
  }

  /** Stops listening and checking. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#checking;
    await this.#reloading?.catch(() => {});
    // Its statements are done (awaited above): end at once, not after
    // postgres.js's wait for a query that failed on a broken connection.
    await this.#listener.end({ timeout: 0 });
  }
}
