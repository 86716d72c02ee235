// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Aggregation of refused connections, so that a flood of failed
 * handshakes costs a few log and audit lines, not one per connection. The
 * first refusal from a source in an interval is told at once, with its
 * reason; the others are counted and told as one summary when the interval
 * ends.
 *
 * @module
 */

/** One refusal or a summary of several, as told to the listener. */
export interface RefusalReport {
  /** Why the connection was refused (the last reason, for a summary). */
  readonly reason: string;
  /**
   * The client: `address:port` or its SPIFFE ID for a single refusal; the
   * address or SPIFFE ID (the source) for a summary.
   */
  readonly peer: string;
  /**
   * Undefined for a single refusal; for a summary, how many more
   * connections from the source were refused in the interval.
   */
  readonly count: number | undefined;
}

/** Sources tracked per interval; more share one summary line. */
const MAX_SOURCES = 1024;
/** The source of refusals beyond {@linkcode MAX_SOURCES}. */
export const OTHER_SOURCES = "other sources";

/**
 * The source a refusal is counted under: the SPIFFE ID when the peer was
 * identified, else the remote address without its port.
 *
 * @param peer `address:port`, `[v6]:port` or a SPIFFE ID
 * @returns the source
 */
export function sourceOf(peer: string): string {
  if (peer.startsWith("spiffe://")) return peer;
  const colon = peer.lastIndexOf(":");
  return colon < 0 ? peer : peer.slice(0, colon);
}

/** Counts refusals per source and interval, and tells them sparingly. */
export class RefusalLog {
  readonly #intervalMs: number;
  readonly #tell: (report: RefusalReport) => void;
  // Source -> refusals after the first in this interval, and the last reason.
  readonly #held = new Map<string, { count: number; reason: string }>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param intervalMs the length of an interval
   * @param tell receives each report
   */
  constructor(intervalMs: number, tell: (report: RefusalReport) => void) {
    this.#intervalMs = intervalMs;
    this.#tell = tell;
  }

  /**
   * Records one refused connection.
   *
   * @param reason why it was refused
   * @param peer the client, as {@linkcode sourceOf} takes it
   */
  refuse(reason: string, peer: string): void {
    let source = sourceOf(peer);
    if (!this.#held.has(source) && this.#held.size >= MAX_SOURCES) {
      source = OTHER_SOURCES;
    }
    const held = this.#held.get(source);
    if (held === undefined && source !== OTHER_SOURCES) {
      this.#held.set(source, { count: 0, reason });
      this.#tell({ reason, peer, count: undefined });
    } else if (held === undefined) {
      this.#held.set(source, { count: 1, reason });
    } else {
      held.count++;
      held.reason = reason;
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), this.#intervalMs);
      // Refusals never keep the process alive.
      Deno.unrefTimer(this.#timer);
    }
  }

  /** Tells the summaries of this interval and starts a new one. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const held = [...this.#held];
    this.#held.clear();
    for (const [source, { count, reason }] of held) {
      if (count > 0) this.#tell({ reason, peer: source, count });
    }
  }
}
