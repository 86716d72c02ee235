// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A replica's presence in the shared store: a row in `spike_replicas`
 * renewed every beat (what `pilot status` lists), and the leadership of the
 * keeper push loop.
 *
 * The leader holds the `leader` advisory lock, a session lock on this
 * module's own connection. PostgreSQL releases it when that session ends:
 * the process died (its socket closes), or it stopped answering (the
 * session's `idle_session_timeout` of a few beats ends a frozen leader's
 * session, since a live one runs a statement every beat). Every unlocked
 * replica tries to take the lock on each beat, so a new leader follows
 * within a beat or two. Pushes are idempotent (the split is deterministic:
 * every replica with the root key pushes the same shards), so a short
 * overlap of two leaders does no harm; one leader only keeps the keepers
 * from being asked N times.
 *
 * This connection sends only simple-protocol queries (no parameters, one
 * message each). A query with parameters that postgres.js has not prepared
 * on the connection goes out as Parse/Describe first, and the rest only
 * once the description is back; a process stopped in between leaves its
 * session waiting for the rest of the exchange, where PostgreSQL arms no
 * idle timeout (it does so only after ReadyForQuery) and ignores
 * `statement_timeout`: a leader frozen at that moment would keep its lock
 * until it runs again.
 *
 * @module
 */
import type { Logger } from "../../../lib/log.ts";
import {
  describeDatabaseError,
  openPool,
  type Sql,
} from "../store/postgres_connect.ts";
import type { PoolSettings } from "../store/postgres_connect.ts";
import { lockKey } from "../store/postgres_schema.ts";

/** One replica as `pilot status` shows it. */
export interface ReplicaView {
  /** Random id of the replica process. */
  readonly id: string;
  /** `SPIKE_NEXUS_REPLICA_NAME`, or "". */
  readonly name: string;
  /** The address the database sees it connect from, with its listen port. */
  readonly address: string | null;
  /** Its process id on its host. */
  readonly pid: number;
  /** `locked` or `unlocked`, as of its last beat. */
  readonly state: string;
  /** Whether it holds the push-loop leadership now. */
  readonly pushLeader: boolean;
  /** Whether this is the replica that answers. */
  readonly self: boolean;
  /** When it started and when it was last seen (ISO times). */
  readonly startedAt: string;
  readonly lastSeen: string;
  /** Seconds since it was last seen, by the database's clock. */
  readonly secondsSinceSeen: number;
}

/** What a presence needs. */
export interface PresenceOptions {
  /** The replica's pool settings (a connection of its own is opened). */
  readonly pool: PoolSettings;
  /** Beat period, ms. */
  readonly beatMs: number;
  /** `SPIKE_NEXUS_REPLICA_NAME`. */
  readonly name: string;
  /** The listen port, shown with the address. */
  readonly port: number;
  /** Whether this replica has its root key (only then may it lead). */
  readonly unlocked: () => boolean;
  /** Called when this replica becomes or stops being the leader. */
  readonly onLeadership?: (leader: boolean) => void;
  /** Where changes are logged. */
  readonly log: Logger;
}

/** Rows not seen for this long are no longer listed, and later deleted. */
const FORGET_AFTER_S = 3600;

/** A replica's row and leadership. */
export class Presence {
  /** This replica's random id. */
  readonly id: string;
  readonly #sql: Sql;
  readonly #options: PresenceOptions;
  readonly #started = new Date();
  #leader = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #beating: Promise<void> | undefined;
  #closed = false;
  // Why the database was unreachable at the last warning; undefined while
  // it is reachable.
  #problem: string | undefined;
  #warnedAt = -Infinity;

  /**
   * Opens the presence connection; call {@linkcode start}.
   *
   * @param options settings
   */
  constructor(options: PresenceOptions) {
    this.#options = options;
    this.id = Array.from(
      crypto.getRandomValues(new Uint8Array(6)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    const beatS = Math.max(1, Math.ceil(options.beatMs / 1000));
    this.#sql = openPool({
      ...options.pool,
      max: 1,
      session: {
        // A frozen leader's session ends, and with it its lock.
        "idle_session_timeout": String(Math.max(3 * beatS, 5) * 1000),
        "tcp_keepalives_idle": String(Math.max(2 * beatS, 5)),
        "tcp_keepalives_interval": "2",
        "tcp_keepalives_count": "3",
      },
    });
  }

  /** Whether this replica leads the push loop (as of its last beat). */
  get isLeader(): boolean {
    return this.#leader;
  }

  /** Starts beating. */
  start(): void {
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#beating = this.#beat().finally(() => {
        this.#beating = undefined;
        this.#schedule(this.#options.beatMs);
      });
    }, ms);
  }

  async #beat(): Promise<void> {
    const o = this.#options;
    const unlocked = o.unlocked();
    try {
      await this.#sql.unsafe(`
        INSERT INTO spike_replicas
          (id, name, address, listen, pid, state, session_pid, started_at,
           seen_at)
        VALUES (${text(this.id)}, ${text(o.name)}, host(inet_client_addr()),
          ${text(String(o.port))}, ${integer(Deno.pid)},
          ${text(unlocked ? "unlocked" : "locked")}, pg_backend_pid(),
          ${text(this.#started.toISOString())}::timestamptz, now())
        ON CONFLICT (id) DO UPDATE SET state = excluded.state,
          session_pid = excluded.session_pid, address = excluded.address,
          seen_at = now()`);
      const [row] = await this.#sql.unsafe(`
        SELECT CASE
          WHEN EXISTS (SELECT 1 FROM pg_locks
            WHERE locktype = 'advisory' AND granted
              AND pid = pg_backend_pid() AND objsubid = 1
              AND ((classid::bigint << 32) | objid::bigint) = ${
        lockKey("leader")
      })
          THEN true
          ELSE ${
        unlocked ? `pg_try_advisory_lock(${lockKey("leader")})` : "false"
      } END AS leader`);
      this.#setLeader(Boolean(row!.leader));
      if (this.#leader) {
        await this.#sql.unsafe(`
          DELETE FROM spike_replicas
          WHERE seen_at < now() - make_interval(secs => ${FORGET_AFTER_S})`);
      }
      if (this.#problem !== undefined) {
        this.#problem = undefined;
        o.log.warn("The database is reachable again");
      }
    } catch (e) {
      // The session, and any lock it held, is gone or going.
      this.#setLeader(false);
      this.#trouble(describeDatabaseError(e, o.pool.database));
    }
  }

  // Warns when the database becomes unreachable, and again when the reason
  // changes (a failover's disconnect, then a refused login on the new
  // primary), at most once per ten beats.
  #trouble(problem: string): void {
    const now = performance.now();
    if (
      this.#problem !== undefined &&
      (problem === this.#problem ||
        now - this.#warnedAt < 10 * this.#options.beatMs)
    ) {
      return;
    }
    this.#options.log.warn(
      this.#problem === undefined
        ? "Replica presence: the database is unreachable"
        : "Replica presence: the database is still unreachable",
      { error: problem },
    );
    this.#problem = problem;
    this.#warnedAt = now;
  }

  #setLeader(leader: boolean): void {
    if (leader === this.#leader) return;
    this.#leader = leader;
    this.#options.log.info(
      leader
        ? "This replica leads the keeper push loop"
        : "Push leadership lost",
      { replica: this.id },
    );
    this.#options.onLeadership?.(leader);
  }

  /**
   * Every replica seen within the last hour, with who leads the push loop.
   *
   * @returns the replicas, most recently started first
   */
  async replicas(): Promise<ReplicaView[]> {
    const rows = await this.#sql.unsafe(`
      SELECT r.id, r.name, r.address, r.listen, r.pid, r.state,
        r.started_at, r.seen_at,
        extract(epoch FROM now() - r.seen_at)::float8 AS age,
        EXISTS (SELECT 1 FROM pg_locks l
          WHERE l.locktype = 'advisory' AND l.granted
            AND l.pid = r.session_pid AND l.objsubid = 1
            AND ((l.classid::bigint << 32) | l.objid::bigint) = ${
      lockKey("leader")
    }) AS leader
      FROM spike_replicas r
      WHERE r.seen_at > now() - make_interval(secs => ${FORGET_AFTER_S})
      ORDER BY r.started_at DESC, r.id`);
    return rows.map((r) => ({
      id: r.id as string,
      name: r.name as string,
      address: r.address === null ? null : `${r.address}:${r.listen}`,
      pid: Number(r.pid),
      state: r.state as string,
      pushLeader: Boolean(r.leader),
      self: r.id === this.id,
      startedAt: new Date(r.started_at as string).toISOString(),
      lastSeen: new Date(r.seen_at as string).toISOString(),
      secondsSinceSeen: Math.round(Number(r.age) * 10) / 10,
    }));
  }

  /** Stops beating, gives up the row and the lock. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#beating;
    try {
      await this.#sql.unsafe(
        `DELETE FROM spike_replicas WHERE id = ${text(this.id)}`,
      );
    } catch {
      // The row ages out.
    }
    // Its statements are done (awaited above): end at once, not after
    // postgres.js's wait for a query that failed on a broken connection.
    await this.#sql.end({ timeout: 0 });
  }
}

// A string as an SQL expression that no character of it can escape from
// (the statements of this connection carry no parameters; see above).
function text(value: string): string {
  const hex = new TextEncoder().encode(value).toHex();
  return `convert_from(decode('${hex}', 'hex'), 'UTF8')`;
}

function integer(value: number): string {
  if (!Number.isSafeInteger(value)) throw new TypeError("Not an integer");
  return String(value);
}
