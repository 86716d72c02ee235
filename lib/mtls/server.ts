// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The SPIFFE mTLS HTTP server every serving mode uses. `Deno.serve` cannot
 * ask for client certificates, so this is `node:https` with client
 * certificates required; each connection's X.509-SVID is then verified by
 * SPIKE's own rules (Deno's verifier accepts a CA as an end entity) and
 * authorized before any request on it reaches the handler.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { IncomingMessage, ServerResponse } from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { SpiffeId } from "../spiffe/id.ts";
import type { SvidSource, X509Material } from "../spiffe/source.ts";
import { SvidError, verifyX509Svid } from "../spiffe/svid.ts";
import { zero } from "../crypto/zero.ts";
import { createLogger } from "../log.ts";
import {
  errorBody,
  ErrorCode,
  type ErrorCodeValue,
  STATUS_OF,
} from "../wire/errors.ts";
import { RefusalLog } from "./refusal_log.ts";
import { peerChainDer, tlsIdentity } from "./tls_material.ts";

/** One request, after the peer's SVID was verified and authorized. */
export interface MtlsRequest {
  /** The verified SPIFFE ID of the client. */
  readonly peerId: SpiffeId;
  /** The HTTP method, e.g. `POST`. */
  readonly method: string;
  /** The URL path, without the query. */
  readonly path: string;
  /** The `?action=` query value, or `""` when absent. */
  readonly action: string;
  /** The `Content-Type` header, or `""` when absent. */
  readonly contentType: string;
  /**
   * The whole request body, at most `maxBodyBytes` long. Zeroed once the
   * handler settles: a handler that needs the bytes later must copy them.
   */
  readonly body: Uint8Array<ArrayBuffer>;
}

/** What a handler answers. */
export interface MtlsResponse {
  /** The HTTP status. */
  status: number;
  /** Extra headers; `Cache-Control: no-store` is added unless set here. */
  headers?: Record<string, string>;
  /**
   * The body. A `Uint8Array` is zeroed once written, so a handler can return
   * secret bytes (a shard) without keeping a copy: never return a shared buffer.
   */
  body?: Uint8Array | string;
  /**
   * A body too large to hold at once (a backup), sent chunked as it is
   * produced, at the pace the client reads it; `body` is ignored. If the
   * stream fails, the connection is cut, so the client sees an incomplete
   * response rather than a short one.
   */
  stream?: AsyncIterable<Uint8Array>;
}

/**
 * A request the server answered itself, before any handler ran. Holds no
 * header value and no body content.
 */
export interface RefusedRequest {
  /** The verified SPIFFE ID of the client. */
  readonly peerId: SpiffeId;
  /** The HTTP method. */
  readonly method: string;
  /** The URL path, or `""` when the request target could not be parsed. */
  readonly path: string;
  /** The `?action=` query value, or `""` when absent or unparsable. */
  readonly action: string;
  /** The status sent: 400 for an unparsable target, 413 for a body too large. */
  readonly status: number;
  /** The wire error code sent. */
  readonly code: string;
}

/** Settings of {@linkcode serveMtls}. */
export interface MtlsServerOptions {
  /** This server's SVID and the trust bundles clients are verified with. */
  source: SvidSource;
  /** Whether a client with this verified SPIFFE ID may connect at all. */
  authorizePeer: (id: SpiffeId) => boolean;
  /** Answers a request; a throw becomes a bare 500. */
  handler: (req: MtlsRequest) => Promise<MtlsResponse>;
  /** The address to listen on; default all interfaces. */
  hostname?: string;
  /** The port; 0 picks a free one (see {@linkcode MtlsServer.port}). */
  port: number;
  /** The largest request body accepted; larger gets 413. */
  maxBodyBytes: number;
  /** Time allowed to receive the request headers; default 10 s. */
  headersTimeoutMs?: number;
  /** Time allowed to receive the whole request; default 60 s. */
  requestTimeoutMs?: number;
  /**
   * Audit hook for connections refused before any handler ran: failed TLS
   * handshakes, rejected SVIDs, unauthorized peers. `peer` is the client's
   * SPIFFE ID when it is known, otherwise its remote address. Refusals are
   * aggregated per source (see `refusalIntervalMs`): the first of an
   * interval comes at once without a `count`, the rest as one call whose
   * `count` says how many and whose `peer` is the source (address without
   * port, or SPIFFE ID).
   */
  onRefused?: (
    reason: string,
    peer: string,
    count: number | undefined,
  ) => void;
  /**
   * The interval over which refused connections from one source are
   * counted instead of told one by one; default 60 s.
   */
  refusalIntervalMs?: number;
  /**
   * Audit hook for requests on a verified connection that the server
   * answers itself, so the handler never sees them: an unparsable request
   * target (400) or a body over `maxBodyBytes` (413). The answer is sent
   * once the hook (and the promise it returns, if any) settles, so an
   * audit line can be written before the client hears back.
   */
  onRequestRefused?: (info: RefusedRequest) => void | Promise<void>;
}

/** A listening mTLS server. */
export interface MtlsServer extends AsyncDisposable {
  /** The port actually bound. */
  readonly port: number;
  /** Stops listening, drops every connection and stops following rotations. */
  close(): Promise<void>;
}

const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const DEFAULT_REFUSAL_INTERVAL_MS = 60_000;
/** How long a refused upload may keep sending after the 413, discarded. */
const CLOSE_GRACE_MS = 1_000;

const encoder = new TextEncoder();
const log = createLogger("mtls");

function remoteOf(socket: TLSSocket): string {
  // After a failed handshake Deno's TLSSocket has lost its handle and with
  // it the address; the TCP socket it wraps still knows.
  const tcp = (socket as { _parent?: Socket })._parent;
  const address = socket.remoteAddress ?? tcp?.remoteAddress ?? "unknown";
  const port = socket.remotePort ?? tcp?.remotePort ?? 0;
  return `${address}:${port}`;
}

/** Splits a request target into path and `action`, or undefined if malformed. */
function parseTarget(
  target: string,
): { path: string; action: string } | undefined {
  let path: string;
  let query: string;
  if (target.startsWith("/")) {
    const q = target.indexOf("?");
    path = q === -1 ? target : target.slice(0, q);
    query = q === -1 ? "" : target.slice(q + 1);
  } else {
    // Absolute form (`https://host/path`), which HTTP/1.1 servers must accept.
    try {
      const url = new URL(target);
      path = url.pathname;
      query = url.search.slice(1);
    } catch {
      return undefined;
    }
  }
  const hash = query.indexOf("#");
  if (hash !== -1) query = query.slice(0, hash);
  return { path, action: new URLSearchParams(query).get("action") ?? "" };
}

type BodyResult =
  | { kind: "ok"; body: Uint8Array<ArrayBuffer> }
  | { kind: "too-large" }
  | { kind: "gone" };

/** Reads the body, giving up as soon as it passes `max` bytes. */
function readBody(req: IncomingMessage, max: number): Promise<BodyResult> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > max) {
    return Promise.resolve({ kind: "too-large" });
  }
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    let settled = false;
    const settle = (result: BodyResult) => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      zero(...chunks);
      resolve(result);
    };
    const onData = (chunk: Uint8Array) => {
      total += chunk.byteLength;
      if (total > max) {
        zero(chunk);
        settle({ kind: "too-large" });
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => {
      const body = new Uint8Array(total);
      let offset = 0;
      for (const chunk of chunks) {
        body.set(chunk, offset);
        offset += chunk.byteLength;
      }
      settle({ kind: "ok", body });
    });
    req.once("error", () => settle({ kind: "gone" }));
    req.once("close", () => settle({ kind: "gone" }));
  });
}

function hasHeader(headers: Record<string, string>, name: string): boolean {
  return Object.keys(headers).some((key) => key.toLowerCase() === name);
}

function errorResponse(code: ErrorCodeValue, reason?: string): MtlsResponse {
  return {
    status: STATUS_OF[code],
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(errorBody(code, reason)),
  };
}

// Sends a streamed body with back-pressure; a failure cuts the connection.
async function pump(
  res: ServerResponse,
  stream: AsyncIterable<Uint8Array>,
): Promise<void> {
  try {
    for await (const chunk of stream) {
      if (res.destroyed) return;
      const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
      if (!res.write(buffer)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.on("drain", done);
          res.on("close", done);
        });
      }
    }
    res.end();
  } catch (e) {
    log.error("Streamed response failed; connection cut", {
      error: (e as Error).name,
      message: (e as Error).message,
    });
    res.destroy();
  }
}

/** Writes a response; false when the response itself was unusable. */
function writeResponse(
  res: ServerResponse,
  response: MtlsResponse,
  close: boolean,
): boolean {
  const status = response.status;
  if (!Number.isInteger(status) || status < 200 || status > 599) return false;
  if (response.stream) return writeStream(res, response, response.stream);
  const body = typeof response.body === "string"
    ? encoder.encode(response.body)
    : response.body ?? new Uint8Array();
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers ?? {})) {
    // The length is ours to state; a handler's guess could desync the stream.
    if (name.toLowerCase() !== "content-length") headers[name] = value;
  }
  if (!hasHeader(headers, "cache-control")) {
    headers["Cache-Control"] = "no-store";
  }
  headers["Content-Length"] = String(body.byteLength);
  if (close) headers["Connection"] = "close";
  try {
    res.writeHead(status, headers);
  } catch {
    // Invalid header names or values from the handler.
    return false;
  }
  if (typeof response.body !== "string" && response.body !== undefined) {
    const sent = response.body;
    res.once("close", () => zero(sent));
  }
  res.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  return true;
}

function writeStream(
  res: ServerResponse,
  response: MtlsResponse,
  stream: AsyncIterable<Uint8Array>,
): boolean {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers ?? {})) {
    if (name.toLowerCase() !== "content-length") headers[name] = value;
  }
  if (!hasHeader(headers, "cache-control")) {
    headers["Cache-Control"] = "no-store";
  }
  try {
    res.writeHead(response.status, headers);
  } catch {
    return false;
  }
  void pump(res, stream);
  return true;
}

/**
 * Starts an mTLS HTTP server. A client must present an X.509-SVID that
 * chains to a trust bundle of its own trust domain and passes
 * `authorizePeer`; otherwise its connection is dropped before any request is
 * read, and `onRefused` is told. A request the server answers itself (400,
 * 413) is told to `onRequestRefused`. Follows the source's rotations with
 * `setSecureContext`, so new connections see the new SVID and bundles.
 *
 * @param options the server settings
 * @returns the listening server
 * @throws when the address cannot be bound
 */
export function serveMtls(options: MtlsServerOptions): Promise<MtlsServer> {
  const {
    source,
    authorizePeer,
    handler,
    maxBodyBytes,
    onRefused,
    onRequestRefused,
  } = options;
  const requestTimeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  // Node requires headersTimeout <= requestTimeout.
  const headersTimeout = Math.min(
    options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS,
    requestTimeout,
  );
  const verified = new WeakMap<object, SpiffeId>();
  const graceTimers = new Set<ReturnType<typeof setTimeout>>();

  const refusals = new RefusalLog(
    options.refusalIntervalMs ?? DEFAULT_REFUSAL_INTERVAL_MS,
    ({ reason, peer, count }) => {
      if (count === undefined) {
        log.warn("Connection refused", { reason, peer });
      } else {
        log.warn("Connections refused", {
          reason,
          peer,
          count,
          intervalMs: options.refusalIntervalMs ?? DEFAULT_REFUSAL_INTERVAL_MS,
        });
      }
      try {
        onRefused?.(reason, peer, count);
      } catch (e) {
        log.error("Refusal hook failed", { error: (e as Error).name });
      }
    },
  );
  const refuse = (socket: TLSSocket, reason: string, peer: string) => {
    socket.destroy();
    refusals.refuse(reason, peer);
  };

  const tellRequestRefused = async (info: RefusedRequest) => {
    try {
      await onRequestRefused?.(info);
    } catch (e) {
      log.error("Request refusal hook failed", { error: (e as Error).name });
    }
  };

  const onSecureConnection = (socket: TLSSocket) => {
    let id: SpiffeId;
    try {
      const { bundles } = source.current();
      const chain = peerChainDer(socket.getPeerCertificate(true), bundles);
      id = verifyX509Svid(chain, bundles);
    } catch (e) {
      refuse(
        socket,
        e instanceof SvidError
          ? `Client SVID rejected: ${e.message}`
          : "Client SVID could not be verified",
        remoteOf(socket),
      );
      return;
    }
    let allowed = false;
    try {
      allowed = authorizePeer(id);
    } catch (e) {
      log.error("Peer authorizer failed", { error: (e as Error).name });
    }
    if (!allowed) {
      refuse(socket, "Client SPIFFE ID is not authorized", id.uri);
      return;
    }
    verified.set(socket, id);
  };

  /**
   * Closes a connection whose request body is being refused, the way Go's
   * server does: Node's HTTP layer would destroy the socket right after the
   * 413 is written, and with upload bytes still in flight that resets the
   * connection before the client reads the answer. Instead send FIN, discard
   * whatever still arrives for a short grace period, then destroy.
   */
  const lingerClose = (req: IncomingMessage, socket: TLSSocket) => {
    socket.destroySoon = () => {
      socket.end();
      const timer = setTimeout(() => {
        graceTimers.delete(timer);
        socket.destroy();
      }, CLOSE_GRACE_MS);
      graceTimers.add(timer);
      socket.once("close", () => {
        clearTimeout(timer);
        graceTimers.delete(timer);
      });
    };
    req.resume();
  };

  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as TLSSocket;
    const peerId = verified.get(socket);
    if (peerId === undefined) {
      // Unreachable while the secureConnection check runs first; kept so
      // that no handler can ever run for an unverified connection.
      socket.destroy();
      return;
    }
    const method = req.method ?? "";
    const target = parseTarget(req.url ?? "");
    if (target === undefined) {
      await tellRequestRefused({
        peerId,
        method,
        path: "",
        action: "",
        status: 400,
        code: ErrorCode.BadRequest,
      });
      writeResponse(
        res,
        errorResponse(ErrorCode.BadRequest, "Malformed request target"),
        false,
      );
      return;
    }
    const read = await readBody(req, maxBodyBytes);
    if (read.kind === "gone") return;
    if (read.kind === "too-large") {
      await tellRequestRefused({
        peerId,
        method,
        path: target.path,
        action: target.action,
        status: 413,
        code: ErrorCode.TooLarge,
      });
      lingerClose(req, socket);
      writeResponse(res, errorResponse(ErrorCode.TooLarge), true);
      return;
    }
    let response: MtlsResponse;
    try {
      response = await handler({
        peerId,
        method,
        path: target.path,
        action: target.action,
        contentType: req.headers["content-type"] ?? "",
        body: read.body,
      });
    } catch (e) {
      log.error("Handler failed", {
        error: (e as Error).name,
        message: (e as Error).message,
        path: target.path,
      });
      response = errorResponse(ErrorCode.Internal);
    } finally {
      zero(read.body);
    }
    if (res.headersSent || res.destroyed) {
      if (response.body instanceof Uint8Array) zero(response.body);
      return;
    }
    if (!writeResponse(res, response, false)) {
      if (response.body instanceof Uint8Array) zero(response.body);
      log.error("Handler returned an unusable response", { path: target.path });
      writeResponse(res, errorResponse(ErrorCode.Internal), false);
    }
  };

  const contextOptions = (material: X509Material) => ({
    ...tlsIdentity(material),
    minVersion: "TLSv1.2" as const,
  });

  const server = https.createServer({
    ...contextOptions(source.current()),
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    headersTimeout,
    requestTimeout,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // The default 30 s check interval would let a slow client outlive the
    // header timeout by far.
    connectionsCheckingInterval: Math.max(
      100,
      Math.min(1_000, headersTimeout / 4),
    ),
  });
  // First in line, so the SVID is checked before the HTTP layer reads a byte.
  server.prependListener("secureConnection", onSecureConnection);
  server.on("request", (req, res) => void onRequest(req, res));
  server.on("tlsClientError", (error: Error, socket: TLSSocket) => {
    refuse(socket, `TLS handshake failed: ${error.message}`, remoteOf(socket));
  });

  const unsubscribe = source.onUpdate((material) => {
    try {
      server.setSecureContext(contextOptions(material));
    } catch (e) {
      log.error("Rotated SVID rejected by TLS; keeping the previous one", {
        error: (e as Error).name,
      });
    }
  });

  return new Promise((resolve, reject) => {
    const onListenError = (e: Error) => {
      unsubscribe();
      reject(e);
    };
    server.once("error", onListenError);
    const onListening = () => {
      server.off("error", onListenError);
      server.on("error", (e: Error) => {
        log.error("Server error", { error: e.name, message: e.message });
      });
      const address = server.address();
      const port = typeof address === "object" && address !== null
        ? address.port
        : options.port;
      let closing: Promise<void> | undefined;
      const close = () => {
        closing ??= new Promise<void>((done) => {
          unsubscribe();
          refusals.flush();
          for (const timer of graceTimers) clearTimeout(timer);
          graceTimers.clear();
          server.close(() => done());
          server.closeAllConnections();
        });
        return closing;
      };
      resolve({ port, close, [Symbol.asyncDispose]: close });
    };
    if (options.hostname === undefined) {
      server.listen(options.port, onListening);
    } else {
      server.listen(options.port, options.hostname, onListening);
    }
  });
}
