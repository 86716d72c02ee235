// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The SPIFFE mTLS HTTP client every calling mode uses: presents this
 * process's X.509-SVID and accepts a server only when its SVID verifies
 * against the trust bundles and its SPIFFE ID passes the caller's authorizer.
 * There is no host-name check: the SPIFFE ID is the server's identity.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { IncomingMessage } from "node:http";
import https from "node:https";
import type { PeerCertificate, TLSSocket } from "node:tls";
import type { SpiffeId } from "../spiffe/id.ts";
import type { SvidSource, X509Material } from "../spiffe/source.ts";
import { SvidError, verifyX509Svid } from "../spiffe/svid.ts";
import { envDuration } from "../config/env.ts";
import { zero } from "../crypto/zero.ts";
import { createLogger } from "../log.ts";
import { peerChainDer, tlsIdentity } from "./tls_material.ts";

/** Settings of {@linkcode createMtlsClient}. */
export interface MtlsClientOptions {
  /** This client's SVID and the trust bundles servers are verified with. */
  source: SvidSource;
  /**
   * Whether a server with this verified SPIFFE ID may be talked to: true,
   * false, or the reason it may not (which then ends the error message).
   */
  authorizeServer: (id: SpiffeId) => boolean | string;
  /**
   * Bound on a whole request (connect, handshake, send, receive); default
   * `SPIKE_HTTP_CLIENT_TIMEOUT` or 60 s.
   */
  timeoutMs?: number;
  /** Reuse connections between requests; default true. */
  keepAlive?: boolean;
  /** Most concurrent connections per server; default unlimited. */
  maxSockets?: number;
  /**
   * The largest response body read; a larger one fails the call. Default
   * {@linkcode DEFAULT_MAX_RESPONSE_BYTES}; set it per call where a route's
   * answers are known to be small.
   */
  maxResponseBytes?: number;
}

/** Per-call settings of {@linkcode MtlsClient.post}. */
export interface MtlsPostOptions {
  /** The request's content type; default `application/json`. */
  contentType?: string;
  /**
   * Time limit of this request, ms; with `sink`, of each wait for more of
   * the response (a stream may take long, but must not stall).
   */
  timeoutMs?: number;
  /** The largest response body this call accepts, bytes. */
  maxResponseBytes?: number;
  /**
   * Takes a successful (2xx) response body chunk by chunk as it arrives,
   * instead of collecting it (no size limit then: nothing is kept): the
   * result's body is empty. The next chunk is handed over only once the
   * returned promise settles; a rejection ends the request with that
   * error. (Deno's `node:https` client keeps reading the socket meanwhile,
   * so chunks queue in memory while the sink is slower than the network.)
   */
  sink?: (chunk: Uint8Array) => void | Promise<void>;
}

/** The response limit of a client that names none: 16 MiB. */
export const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/** A complete response. */
export interface MtlsResult {
  /** The HTTP status. */
  status: number;
  /** Response headers, names in lowercase; repeated ones joined with `, `. */
  headers: Record<string, string>;
  /** The whole response body, at most the call's size limit. */
  body: Uint8Array;
}

/** An mTLS client bound to a source; follows its rotations. */
export interface MtlsClient extends Disposable {
  /**
   * Sends a POST and reads the whole response. The body is sent only after
   * the server's SVID was verified and authorized. The response is read
   * only up to the size limit: a longer one (declared or streamed) ends the
   * call with a `too-large` error, so a hostile server cannot fill memory.
   *
   * @param url an `https:` URL
   * @param body the request body
   * @param options content type (default `application/json`), a timeout
   *   and a response size limit for this request
   * @returns the response, whatever its status
   * @throws {MtlsClientError} when no response could be had
   */
  post(
    url: string,
    body: Uint8Array | string,
    options?: MtlsPostOptions,
  ): Promise<MtlsResult>;
  /** Drops every connection and stops following rotations. */
  close(): void;
}

/** Why a request got no response. */
export type MtlsClientErrorKind =
  | "unreachable"
  | "timeout"
  | "unauthorized-server"
  | "tls"
  | "too-large";

/** Raised by {@linkcode MtlsClient.post} when no response could be had. */
export class MtlsClientError extends Error {
  /** What went wrong, for callers that react differently per case. */
  readonly kind: MtlsClientErrorKind;
  /**
   * Whether the request had been handed to the connection when it failed:
   * false means the server cannot have acted on it (safe to send again).
   */
  readonly requestSent: boolean;
  /** Creates the error. */
  constructor(
    kind: MtlsClientErrorKind,
    message: string,
    options?: ErrorOptions & { requestSent?: boolean },
  ) {
    super(message, options);
    this.name = "MtlsClientError";
    this.kind = kind;
    this.requestSent = options?.requestSent ?? false;
  }
}

/** What `checkServerIdentity` returns to make the TLS layer drop a server. */
class ServerRejected extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ServerRejected";
  }
}

const DEFAULT_TIMEOUT_MS = 60_000;
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "ECONNABORTED",
]);

const encoder = new TextEncoder();
const log = createLogger("mtls");

/** Maps a `node:https` error to our error kinds. */
function classify(error: unknown): MtlsClientError {
  if (error instanceof MtlsClientError) return error;
  if (error instanceof ServerRejected) {
    return new MtlsClientError("unauthorized-server", error.message);
  }
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof code === "string" && UNREACHABLE_CODES.has(code)) {
    return new MtlsClientError(
      "unreachable",
      `Server unreachable: ${message}`,
      { cause: error },
    );
  }
  return new MtlsClientError("tls", `TLS failure: ${message}`, {
    cause: error,
  });
}

function headersOf(res: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) {
      headers[name] = Array.isArray(value) ? value.join(", ") : value;
    }
  }
  return headers;
}

/**
 * Creates an mTLS client. Connections present the source's current SVID;
 * after a rotation new requests use a new connection pool with the new SVID
 * and bundles, and the old pool is dropped once its requests finish.
 *
 * @param options the client settings
 * @returns the client
 * @throws {ConfigError} when `SPIKE_HTTP_CLIENT_TIMEOUT` is set but invalid
 */
export function createMtlsClient(options: MtlsClientOptions): MtlsClient {
  const { source, authorizeServer } = options;
  const timeoutMs = options.timeoutMs ??
    envDuration("SPIKE_HTTP_CLIENT_TIMEOUT", DEFAULT_TIMEOUT_MS);
  const keepAlive = options.keepAlive ?? true;
  const defaultMaxResponse = options.maxResponseBytes ??
    DEFAULT_MAX_RESPONSE_BYTES;

  interface Pool {
    agent: https.Agent;
    inFlight: number;
    retired: boolean;
  }

  const makePool = (material: X509Material): Pool => {
    const checkServerIdentity = (
      _host: string,
      cert: PeerCertificate,
    ): Error | undefined => {
      let id: SpiffeId;
      try {
        id = verifyX509Svid(
          peerChainDer(cert, material.bundles),
          material.bundles,
        );
      } catch (e) {
        return new ServerRejected(
          e instanceof SvidError
            ? `Server SVID rejected: ${e.message}`
            : "Server SVID could not be verified",
        );
      }
      let allowed: boolean | string = false;
      try {
        allowed = authorizeServer(id);
      } catch {
        // A failing authorizer refuses, like one that says no.
      }
      if (allowed === true) return undefined;
      return new ServerRejected(
        `Server ${id.uri} is not authorized${
          typeof allowed === "string" ? `: ${allowed}` : ""
        }`,
      );
    };
    const agentOptions: https.AgentOptions = {
      ...tlsIdentity(material),
      minVersion: "TLSv1.2",
      rejectUnauthorized: true,
      checkServerIdentity,
      keepAlive,
    };
    if (options.maxSockets !== undefined) {
      agentOptions.maxSockets = options.maxSockets;
    }
    return {
      agent: new https.Agent(agentOptions),
      inFlight: 0,
      retired: false,
    };
  };

  let pool = makePool(source.current());
  const retired = new Set<Pool>();
  let closed = false;

  const retire = (old: Pool) => {
    old.retired = true;
    if (old.inFlight === 0) {
      old.agent.destroy();
    } else {
      retired.add(old);
    }
  };

  const unsubscribe = source.onUpdate((material) => {
    const old = pool;
    pool = makePool(material);
    retire(old);
  });

  const post = (
    url: string,
    body: Uint8Array | string,
    postOptions: MtlsPostOptions = {},
  ): Promise<MtlsResult> => {
    if (closed) {
      return Promise.reject(
        new MtlsClientError("unreachable", "Client is closed"),
      );
    }
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return Promise.reject(new TypeError(`Invalid URL: ${url}`));
    }
    if (target.protocol !== "https:") {
      return Promise.reject(new TypeError(`URL must use https: ${url}`));
    }
    const bytes = typeof body === "string" ? encoder.encode(body) : body;
    const used = pool;
    used.inFlight++;
    const limit = postOptions.timeoutMs ?? timeoutMs;
    const maxResponse = postOptions.maxResponseBytes ?? defaultMaxResponse;

    return new Promise<MtlsResult>((resolve, reject) => {
      let settled = false;
      const req = https.request({
        protocol: "https:",
        hostname: target.hostname.replace(/^\[|\]$/g, ""),
        port: target.port === "" ? 443 : Number(target.port),
        path: target.pathname + target.search,
        method: "POST",
        agent: used.agent,
        headers: {
          "Content-Type": postOptions.contentType ?? "application/json",
          "Content-Length": String(bytes.byteLength),
        },
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          req.destroy(
            new MtlsClientError("timeout", `No response within ${limit} ms`),
          );
        }, limit);
      };
      arm();
      const finish = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        used.inFlight--;
        if (used.retired && used.inFlight === 0) {
          retired.delete(used);
          used.agent.destroy();
        }
        outcome();
      };
      let sent = false;
      const send = () => {
        sent = true;
        req.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      };
      // A failing sink ends the request with its own error.
      let sinkError: { error: unknown } | undefined;
      const sinkFailed = (e: unknown) => {
        sinkError = { error: e };
        req.destroy(e instanceof Error ? e : new Error(String(e)));
      };
      const fail = (e: unknown) => {
        if (sinkError) return finish(() => reject(sinkError!.error));
        const error = classify(e);
        finish(() =>
          reject(
            sent
              ? new MtlsClientError(error.kind, error.message, {
                cause: error.cause,
                requestSent: true,
              })
              : error,
          )
        );
      };

      req.on("error", fail);
      req.on("socket", (socket: TLSSocket) => {
        // Send nothing until the server passed checkServerIdentity, which
        // runs before `secureConnect`; a pooled socket passed it already.
        if (socket.connecting || !socket.authorized) {
          socket.once("secureConnect", send);
        } else {
          send();
        }
      });
      req.on("response", (res: IncomingMessage) => {
        const chunks: Uint8Array[] = [];
        let total = 0;
        // Stop reading the moment the answer is known to be too long,
        // before it is buffered: a declared length, or the bytes so far.
        const tooLarge = (size: number) => {
          log.warn("Response too large; call failed", {
            peer: target.origin,
            path: target.pathname,
            limit: maxResponse,
            size,
          });
          zero(...chunks);
          chunks.length = 0;
          const error = new MtlsClientError(
            "too-large",
            `Response from ${target.origin} is larger than ${maxResponse} bytes`,
          );
          finish(() => reject(error));
          res.destroy();
          req.destroy();
        };
        const status = res.statusCode ?? 0;
        const sink = status >= 200 && status <= 299
          ? postOptions.sink
          : undefined;
        const declared = Number(res.headers["content-length"] ?? 0);
        if (!sink && declared > maxResponse) {
          tooLarge(declared);
          return;
        }
        res.on("data", (chunk: Uint8Array) => {
          if (settled) return;
          if (sink) {
            arm();
            let taken: void | Promise<void>;
            try {
              taken = sink(chunk);
            } catch (e) {
              sinkFailed(e);
              return;
            }
            if (taken instanceof Promise) {
              res.pause();
              taken.then(() => res.resume(), sinkFailed);
            }
            return;
          }
          total += chunk.byteLength;
          if (total > maxResponse) {
            zero(chunk);
            tooLarge(total);
            return;
          }
          chunks.push(chunk);
        });
        res.on("error", fail);
        res.on("close", () => {
          if (!res.complete) {
            fail(
              new MtlsClientError(
                "unreachable",
                "Connection closed before the response was complete",
              ),
            );
          }
        });
        res.on("end", () => {
          const out = new Uint8Array(total);
          let offset = 0;
          for (const chunk of chunks) {
            out.set(chunk, offset);
            offset += chunk.byteLength;
          }
          // Responses can carry secrets (shards): keep a single copy.
          zero(...chunks);
          finish(() =>
            resolve({
              status: res.statusCode ?? 0,
              headers: headersOf(res),
              body: out,
            })
          );
        });
      });
    });
  };

  const close = () => {
    if (closed) return;
    closed = true;
    unsubscribe();
    pool.agent.destroy();
    for (const old of retired) old.agent.destroy();
    retired.clear();
  };

  return { post, close, [Symbol.dispose]: close };
}
