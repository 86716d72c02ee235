// Copyright 2026 the SPIKE for Deno authors. MIT license.
// A TCP proxy in front of a real keeper, for faults a test switches on and
// off: added latency, answers held back (the request gets through, nexus
// never hears back), or nothing at all. This kernel has no netem, so the
// faults are made here. When the client side closes, bytes still held are
// dropped with it, as they would be with the host that sent them.
import net from "node:net";

/** What the proxy does with the bytes of each direction. */
export interface ProxyFaults {
  /** Delay of every chunk, both ways, ms. */
  delayMs: number;
  /** Hold the server's bytes back (requests still arrive). */
  holdAnswers: boolean;
  /** Accept connections but forward nothing either way. */
  blackhole: boolean;
}

/** A proxy from a local port to a target port on 127.0.0.1. */
export class TcpProxy {
  /** The port clients connect to. */
  readonly port: number;
  /** The faults in force, changed by the test at any time. */
  readonly faults: ProxyFaults = {
    delayMs: 0,
    holdAnswers: false,
    blackhole: false,
  };
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();

  private constructor(server: net.Server, port: number) {
    this.#server = server;
    this.port = port;
  }

  /**
   * Starts a proxy.
   *
   * @param target the port of the real server on 127.0.0.1
   * @param port the port to listen on (0: any free port)
   * @returns the proxy
   */
  static async start(target: number, port = 0): Promise<TcpProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    const address = server.address() as net.AddressInfo;
    const proxy = new TcpProxy(server, address.port);
    server.on(
      "connection",
      (client: net.Socket) => proxy.#pipe(client, target),
    );
    return proxy;
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => this.#sockets.delete(socket));
  }

  #pipe(client: net.Socket, target: number): void {
    const server = net.connect(target, "127.0.0.1");
    this.#track(client);
    this.#track(server);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      client.destroy();
      server.destroy();
    };
    client.on("close", close);
    server.on("close", close);
    const forward =
      (to: net.Socket, answer: boolean) => (chunk: Uint8Array) => {
        if (this.faults.blackhole || (answer && this.faults.holdAnswers)) {
          return;
        }
        const send = () => {
          if (!closed) to.write(chunk);
        };
        if (this.faults.delayMs > 0) setTimeout(send, this.faults.delayMs);
        else send();
      };
    client.on("data", forward(server, false));
    server.on("data", forward(client, true));
  }

  /** Drops every connection and stops listening. */
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
