// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A small TCP proxy on 127.0.0.1 that plays a bad network between two
 * local processes, where no `tc netem` is available: a one-way delay with
 * jitter (a WAN link's round trip), loss (a lost segment costs the bytes
 * behind it a retransmission timeout, as TCP's in-order delivery does),
 * a black hole (connections are accepted and nothing ever passes), answers
 * held back (requests arrive, the client never hears back), and a cut
 * (every connection dropped, new ones closed at once). Tests and the
 * benchmark put it between nexus and a keeper, or nexus and PostgreSQL.
 *
 * @module
 */

/** How the proxy treats traffic. */
export type ProxyMode =
  /** Forward with the configured delay and loss. */
  | "forward"
  /** Accept connections and forward nothing, in either direction. */
  | "blackhole"
  /** Forward what clients send; drop what servers answer. */
  | "requests-only"
  /** Drop every connection and close new ones at once. */
  | "cut";

// A cut or freeze waiting for its marker.
interface Cut {
  readonly marker: Uint8Array;
  readonly when: "before" | "after" | "freeze";
  readonly then?: ProxyMode | undefined;
}

/** Link properties. */
export interface LinkOptions {
  /** One-way delay, ms (round trip = 2×). Default 0. */
  readonly delayMs?: number;
  /** Up to this much more, uniformly, per chunk, ms. Default 0. */
  readonly jitterMs?: number;
  /** Probability that a chunk is "lost" and waits a retransmission. */
  readonly loss?: number;
  /** Retransmission timeout of a lost chunk, ms. Default 250. */
  readonly rtoMs?: number;
  /**
   * When a side closes, bytes it sent that still wait for their delay are
   * lost with it (a host that died before they left), instead of being
   * delivered. Default false.
   */
  readonly dropOnClose?: boolean;
}

/** A running proxy. */
export class TcpProxy {
  /** The port it listens on. */
  readonly port: number;
  /** Connections accepted so far. */
  accepted = 0;
  readonly #listener: Deno.Listener;
  readonly #target: { hostname: string; port: number };
  readonly #conns = new Set<
    { close(): void; forwarding: boolean; answers: boolean }
  >();
  #mode: ProxyMode = "forward";
  #cut: Cut | undefined;
  #link: Required<LinkOptions>;
  #closed = false;

  private constructor(
    listener: Deno.Listener,
    target: { hostname: string; port: number },
    link: LinkOptions,
  ) {
    this.#listener = listener;
    this.port = (listener.addr as Deno.NetAddr).port;
    this.#target = target;
    this.#link = withDefaults(link);
    this.#accept();
  }

  /**
   * Starts a proxy to `target`.
   *
   * @param target where connections go
   * @param link delay and loss
   * @param port the port to listen on (default: a free one)
   * @returns the proxy
   */
  static start(
    target: { hostname: string; port: number },
    link: LinkOptions = {},
    port = 0,
  ): TcpProxy {
    const listener = Deno.listen({ hostname: "127.0.0.1", port });
    return new TcpProxy(listener, target, link);
  }

  /** The current mode. */
  get mode(): ProxyMode {
    return this.#mode;
  }

  /**
   * Connections open now that pass nothing (black-holed): clients still
   * waiting on a peer that will never answer.
   */
  get hanging(): number {
    return [...this.#conns].filter((c) => !c.forwarding).length;
  }

  /**
   * Changes the mode; `cut` drops every open connection, `blackhole`
   * freezes them.
   *
   * @param mode the new mode
   */
  setMode(mode: ProxyMode): void {
    this.#mode = mode;
    for (const conn of [...this.#conns]) {
      if (mode === "cut") conn.close();
      else {
        conn.forwarding = mode !== "blackhole";
        conn.answers = mode !== "requests-only";
      }
    }
  }

  /**
   * Changes the link properties for new chunks.
   *
   * @param link delay and loss
   */
  setLink(link: LinkOptions): void {
    this.#link = withDefaults(link);
  }

  /**
   * Breaks the next connection whose client sends `marker`: before the
   * bytes reach the server, or after, dropping the server's answer (the
   * request was done; the client never learns it).
   *
   * @param marker bytes to look for in what a client sends
   * @param when before or after the server gets them
   * @param then the mode the proxy takes right after the cut (default: it
   * stays as it is), so a test holds back the client's next connections
   */
  cutOnce(marker: string, when: "before" | "after", then?: ProxyMode): void {
    this.#cut = { marker: new TextEncoder().encode(marker), when, then };
  }

  /**
   * Freezes the next connection whose client sends `marker`, right after
   * those bytes reach the server: nothing more passes either way and the
   * connection stays open, as with a client process stopped (SIGSTOP) the
   * moment it sent them.
   *
   * @param marker bytes to look for in what a client sends
   */
  freezeOnce(marker: string): void {
    this.#cut = { marker: new TextEncoder().encode(marker), when: "freeze" };
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept() as Deno.TcpConn;
      } catch {
        return;
      }
      this.accepted++;
      if (this.#mode === "cut") {
        client.close();
        continue;
      }
      this.#serve(client);
    }
  }

  async #serve(client: Deno.TcpConn): Promise<void> {
    client.setNoDelay(true);
    let server: Deno.TcpConn | undefined;
    let closed = false;
    const conn = {
      forwarding: this.#mode !== "blackhole",
      answers: this.#mode !== "requests-only",
      close: () => {
        if (closed) return;
        closed = true;
        this.#conns.delete(conn);
        for (const c of [client, server]) {
          try {
            c?.close();
          } catch {
            // Already closed.
          }
        }
      },
    };
    this.#conns.add(conn);
    try {
      // The connection to the target is made through the same link.
      await this.#wait(conn);
      if (closed) return;
      server = await Deno.connect(this.#target);
      server.setNoDelay(true);
      // The cut that waits for the server's answer to drop it.
      let armed: Cut | undefined;
      const then = (cut: Cut) => {
        if (cut.then !== undefined) this.setMode(cut.then);
      };
      await Promise.all([
        this.#pump(client, server, conn, (chunk) => {
          const cut = this.#cut;
          if (!cut || !contains(chunk, cut.marker)) return true;
          this.#cut = undefined;
          if (cut.when === "freeze") return "last";
          if (cut.when === "before") {
            then(cut);
            return false;
          }
          armed = cut;
          return true;
        }),
        this.#pump(server, client, conn, () => {
          if (!armed) return true;
          then(armed);
          return false;
        }, true),
      ]);
    } catch {
      // A side went away.
    } finally {
      conn.close();
    }
  }

  // Waits one one-way delay, and while the link is black-holed.
  async #wait(conn: { forwarding: boolean }): Promise<void> {
    await sleep(this.#link.delayMs);
    while (!conn.forwarding && !this.#closed) await sleep(50);
  }

  async #pump(
    from: Deno.TcpConn,
    to: Deno.TcpConn,
    conn: { forwarding: boolean; answers: boolean; close(): void },
    pass: (chunk: Uint8Array) => boolean | "last",
    answer = false,
  ): Promise<void> {
    let due = 0;
    let chain = Promise.resolve();
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await from.read(buffer);
      if (n === null) break;
      const chunk = buffer.slice(0, n);
      const link = this.#link;
      const lost = Math.random() < link.loss;
      const delay = link.delayMs + Math.random() * link.jitterMs +
        (lost ? link.rtoMs : 0);
      // In order: a chunk never overtakes the one before it.
      due = Math.max(due, performance.now() + delay);
      const at = due;
      const passes = pass(chunk);
      chain = chain.then(async () => {
        await sleep(at - performance.now());
        while (!conn.forwarding && !this.#closed) await sleep(50);
        if (!passes) return conn.close();
        if (answer && !conn.answers) return;
        await writeAll(to, chunk);
        if (passes === "last") conn.forwarding = false;
      });
      chain.catch(() => conn.close());
    }
    if (this.#link.dropOnClose) return conn.close();
    await chain;
    try {
      await to.closeWrite();
    } catch {
      // Already gone.
    }
  }

  /** Stops listening and drops every connection. */
  close(): void {
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    for (const conn of [...this.#conns]) conn.close();
  }
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return true;
  }
  return false;
}

function withDefaults(link: LinkOptions): Required<LinkOptions> {
  return {
    delayMs: link.delayMs ?? 0,
    jitterMs: link.jitterMs ?? 0,
    loss: link.loss ?? 0,
    rtoMs: link.rtoMs ?? 250,
    dropOnClose: link.dropOnClose ?? false,
  };
}

function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((r) => setTimeout(r, ms));
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array) {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}
