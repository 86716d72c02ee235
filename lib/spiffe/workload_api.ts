// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * An {@linkcode SvidSource} fed by the SPIFFE Workload API (what a SPIRE
 * agent serves): one long-lived `FetchX509SVID` stream, each message the
 * complete new state, reconnecting with go-spiffe's backoff when the stream
 * ends.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { Stats } from "node:fs";
import { stat } from "node:fs/promises";
import process from "node:process";
import * as grpc from "@grpc/grpc-js";
import { formatDuration } from "../config/duration.ts";
import { envDuration } from "../config/env.ts";
import { zero } from "../crypto/zero.ts";
import { createLogger } from "../log.ts";
import { pemFromDer, splitDerSequences } from "./der.ts";
import {
  type EndpointAddress,
  formatEndpointAddress,
  grpcTarget,
  parseEndpointAddress,
} from "./endpoint_address.ts";
import { parseSpiffeId, type SpiffeId, validateTrustDomain } from "./id.ts";
import {
  DEFAULT_SOURCE_TIMEOUT_MS,
  type SvidSource,
  type X509Material,
} from "./source.ts";
import { verifyOwnSvid } from "./svid.ts";
import {
  decodeX509SvidResponse,
  encodeX509SvidRequest,
  type X509SvidResponseMessage,
} from "./workload_proto.ts";

/** The gRPC method path; `workload.proto` has no package line. */
export const FETCH_X509_SVID_PATH = "/SpiffeWorkloadAPI/FetchX509SVID";
/** The metadata key every Workload API call must carry, with value `true`. */
export const WORKLOAD_API_HEADER = "workload.spiffe.io";

const DEFAULT_BACKOFF_BASE_MS = 1_000;
const DEFAULT_BACKOFF_MAX_MS = 30_000;

const log = createLogger("workload-api");

/** Options for {@linkcode openWorkloadApiSource}. */
export interface WorkloadApiSourceOptions {
  /** Endpoint URI; default the `SPIFFE_ENDPOINT_SOCKET` environment variable. */
  endpoint?: string;
  /**
   * Longest wait for the first SVID, in milliseconds; default
   * `SPIKE_SPIFFE_SOURCE_TIMEOUT` (Go duration), else 30 s.
   */
  timeoutMs?: number;
  /**
   * A `unix:` socket that does not exist: `fail` at once (a CLI, where the
   * cause is certain), or `wait` for it, as for an agent still starting
   * (a service; the default).
   */
  missingSocket?: "fail" | "wait";
  /** Backoff step in milliseconds: retry n waits n × this (go-spiffe: 1 s). */
  backoffBaseMs?: number;
  /** Longest backoff in milliseconds (go-spiffe: 30 s). */
  backoffMaxMs?: number;
}

/** Raised when the Workload API cannot provide an SVID. */
export class WorkloadApiError extends Error {
  /** The gRPC status code, when the server answered with one. */
  readonly grpcCode: number | undefined;

  /** Creates the error. */
  constructor(message: string, grpcCode?: number) {
    super(message);
    this.name = "WorkloadApiError";
    this.grpcCode = grpcCode;
  }
}

/**
 * Connects to the Workload API and resolves once the first X.509-SVID has
 * arrived. The source then follows rotations until closed. The key bytes
 * of a replaced SVID are zeroed right after the update listeners ran, so
 * listeners must copy what they keep.
 *
 * @param options endpoint, first-SVID timeout and backoff overrides
 * @returns the live source
 * @throws {WorkloadApiError} when no SVID arrives within the timeout, or the
 *   server refuses the call for good (InvalidArgument, Unimplemented)
 * @throws {EndpointAddressError} when the endpoint address is invalid
 * @throws {ConfigError} when `SPIKE_SPIFFE_SOURCE_TIMEOUT` is invalid
 */
export async function openWorkloadApiSource(
  options: WorkloadApiSourceOptions = {},
): Promise<SvidSource> {
  const endpoint = options.endpoint ??
    process.env.SPIFFE_ENDPOINT_SOCKET?.trim();
  if (!endpoint) {
    throw new WorkloadApiError(
      "No Workload API endpoint: set SPIFFE_ENDPOINT_SOCKET (e.g. unix:///run/spire/sockets/agent.sock)",
    );
  }
  const address = parseEndpointAddress(
    endpoint,
    options.endpoint === undefined ? "SPIFFE_ENDPOINT_SOCKET" : undefined,
  );
  const timeoutMs = options.timeoutMs ??
    envDuration("SPIKE_SPIFFE_SOURCE_TIMEOUT", DEFAULT_SOURCE_TIMEOUT_MS);
  if (address.kind === "unix") {
    await checkSocket(address.path, endpoint, options.missingSocket ?? "wait");
  }
  const source = new WorkloadApiSource(
    address,
    options.backoffBaseMs ?? DEFAULT_BACKOFF_BASE_MS,
    options.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS,
  );
  try {
    await source.firstSvid(timeoutMs);
  } catch (e) {
    source.close();
    throw e;
  }
  return source;
}

/**
 * Looks at the socket before connecting: a path that is no socket is an
 * error at once; a missing one is one for a CLI, and a logged wait for a
 * service (its agent may be starting). In Deno, a socket the process may
 * not write to is an error at once. Without read access to the path the
 * connection attempt tells instead.
 */
async function checkSocket(
  path: string,
  endpoint: string,
  missing: "fail" | "wait",
): Promise<void> {
  // Deno connects to a unix socket only with write access to its path;
  // without it (and no terminal to ask on) every attempt fails alike until
  // the timeout, so say so now.
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  const write = deno?.permissions.querySync({ name: "write", path }).state;
  if (
    write === "denied" || (write === "prompt" && !deno!.stdin.isTerminal())
  ) {
    throw new WorkloadApiError(
      `Connecting to the Workload API socket ${path} needs write access to it: run Deno with --allow-write=${path} (SPIFFE_ENDPOINT_SOCKET=${endpoint})`,
    );
  }
  let info: Stats;
  try {
    // node:fs, not Deno: the SDK runs this on Node.js too.
    info = await stat(path);
  } catch (e) {
    if ((e as { code?: unknown }).code !== "ENOENT") return;
    const message =
      `The Workload API socket ${path} does not exist (SPIFFE_ENDPOINT_SOCKET=${endpoint}): start the SPIRE agent, or point SPIFFE_ENDPOINT_SOCKET at its socket`;
    if (missing === "fail") throw new WorkloadApiError(message);
    log.warn("Waiting for the Workload API socket to appear", {
      endpoint,
      reason: message,
    });
    return;
  }
  if (!info.isSocket()) {
    throw new WorkloadApiError(
      `${path} is not a socket (SPIFFE_ENDPOINT_SOCKET=${endpoint}): point SPIFFE_ENDPOINT_SOCKET at the SPIRE agent's socket`,
    );
  }
}

/** Retrying these would never help (SPIFFE Workload Endpoint, error codes). */
const FATAL_CODES: ReadonlySet<number> = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.UNIMPLEMENTED,
]);

type Decoded = X509SvidResponseMessage | Error;

class WorkloadApiSource implements SvidSource {
  readonly #endpoint: string;
  readonly #client: grpc.Client;
  readonly #backoffBaseMs: number;
  readonly #backoffMaxMs: number;
  readonly #listeners = new Set<(material: X509Material) => void>();
  #material: X509Material | undefined;
  #call: grpc.ClientReadableStream<Decoded> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retries = 0;
  #closed = false;
  #lastError = "";
  #first: {
    resolve: () => void;
    reject: (e: Error) => void;
  } | undefined;

  constructor(
    address: EndpointAddress,
    backoffBaseMs: number,
    backoffMaxMs: number,
  ) {
    this.#endpoint = formatEndpointAddress(address);
    this.#backoffBaseMs = backoffBaseMs;
    this.#backoffMaxMs = backoffMaxMs;
    // The channel's own reconnect pacing follows ours, so a retried call
    // is not failed early by a channel still backing off on its own clock.
    this.#client = new grpc.Client(
      grpcTarget(address),
      grpc.credentials.createInsecure(),
      {
        "grpc.initial_reconnect_backoff_ms": backoffBaseMs,
        "grpc.max_reconnect_backoff_ms": backoffMaxMs,
      },
    );
    this.#connect();
  }

  /** Resolves at the first SVID; rejects at a fatal status or the timeout. */
  firstSvid(timeoutMs: number): Promise<void> {
    if (this.#material) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#first = undefined;
        const last = this.#lastError ? ` (last error: ${this.#lastError})` : "";
        reject(
          new WorkloadApiError(
            `No X.509-SVID from the Workload API at ${this.#endpoint} within ${
              formatDuration(timeoutMs)
            }${last}`,
          ),
        );
      }, timeoutMs);
      this.#first = {
        resolve: () => {
          clearTimeout(timer);
          this.#first = undefined;
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          this.#first = undefined;
          reject(e);
        },
      };
    });
  }

  current(): X509Material {
    if (!this.#material) {
      throw new WorkloadApiError("The Workload API source has no SVID yet");
    }
    return this.#material;
  }

  onUpdate(listener: (material: X509Material) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#call?.cancel();
    this.#call = undefined;
    this.#client.close();
    this.#listeners.clear();
    zero(this.#material?.keyPem);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #connect(): void {
    this.#retryTimer = undefined;
    if (this.#closed) return;
    const metadata = new grpc.Metadata();
    metadata.set(WORKLOAD_API_HEADER, "true");
    const call = this.#client.makeServerStreamRequest<Uint8Array, Decoded>(
      FETCH_X509_SVID_PATH,
      (request) => Buffer.from(request),
      decodeAndWipe,
      encodeX509SvidRequest(),
      metadata,
    );
    this.#call = call;
    call.on("data", (message: Decoded) => this.#onMessage(message));
    // Every outcome, errors included, also arrives as "status"; handling it
    // there keeps one code path. The listener stops "error" from throwing.
    call.on("error", () => {});
    call.on("status", (status: grpc.StatusObject) => {
      if (this.#call === call) this.#call = undefined;
      this.#onStatus(status);
    });
  }

  #onMessage(message: Decoded): void {
    this.#retries = 0;
    if (message instanceof Error) {
      this.#lastError = message.message;
      log.error("Ignoring an unreadable X509SVIDResponse", {
        endpoint: this.#endpoint,
        error: message.message,
      });
      return;
    }
    let material: X509Material;
    try {
      material = materialFromResponse(message);
    } catch (e) {
      // go-spiffe keeps the stream and the previous state on a bad update.
      this.#lastError = (e as Error).message;
      log.error("Ignoring an invalid X509SVIDResponse", {
        endpoint: this.#endpoint,
        error: (e as Error).message,
      });
      return;
    } finally {
      for (const svid of message.svids) zero(svid.x509SvidKey);
    }
    if (this.#closed) {
      zero(material.keyPem);
      return;
    }
    const previous = this.#material;
    this.#material = material;
    if (this.#first) {
      this.#first.resolve();
    } else {
      log.info("X.509-SVID updated", {
        endpoint: this.#endpoint,
        spiffeId: material.id.uri,
      });
      for (const listener of [...this.#listeners]) {
        try {
          listener(material);
        } catch (e) {
          log.error("An SVID update listener failed", {
            error: (e as Error).message,
          });
        }
      }
    }
    zero(previous?.keyPem);
  }

  #onStatus(status: grpc.StatusObject): void {
    if (this.#closed) return;
    const name = grpc.status[status.code] ?? String(status.code);
    this.#lastError = `${name}: ${shortDetails(status.details)}`;
    if (FATAL_CODES.has(status.code)) {
      const message =
        `Workload API at ${this.#endpoint} refused FetchX509SVID: ${name}: ${status.details}`;
      if (this.#first) {
        this.#first.reject(new WorkloadApiError(message, status.code));
      } else {
        log.error("Stopping the Workload API watch", {
          endpoint: this.#endpoint,
          error: message,
        });
      }
      return;
    }
    this.#retries++;
    const delay = Math.min(
      this.#backoffBaseMs * this.#retries,
      this.#backoffMaxMs,
    );
    log.warn("Workload API stream ended; retrying", {
      endpoint: this.#endpoint,
      error: this.#lastError,
      retryInMs: delay,
    });
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }
}

/**
 * The useful part of a grpc-js status detail: "No connection established.
 * Last error: Error: connect ENOENT /x.sock. Resolution note: " becomes
 * "connect ENOENT /x.sock".
 */
function shortDetails(details: string): string {
  const cause = /Last error: (?:Error: )?(.*?)\.?(?: Resolution note:.*)?$/s
    .exec(details)?.[1]?.trim();
  return cause ? cause : details;
}

/**
 * gRPC deserializer: decodes, then wipes grpc-js's copy of the message,
 * which holds the private key. Decode errors become values so one bad
 * message does not tear the stream down.
 */
function decodeAndWipe(bytes: Uint8Array): Decoded {
  try {
    return decodeX509SvidResponse(bytes);
  } catch (e) {
    return e as Error;
  } finally {
    zero(bytes);
  }
}

/** Builds the material from a response: default SVID first, then bundles. */
function materialFromResponse(message: X509SvidResponseMessage): X509Material {
  const svid = message.svids[0];
  if (!svid) throw new WorkloadApiError("The response holds no X.509-SVID");
  let id: SpiffeId;
  try {
    id = parseSpiffeId(svid.spiffeId);
  } catch (e) {
    throw new WorkloadApiError(
      `The X.509-SVID's spiffe_id is invalid: ${(e as Error).message}`,
    );
  }
  const chain = splitDerSequences(svid.x509Svid);
  if (chain.length === 0) {
    throw new WorkloadApiError(
      `The X.509-SVID for ${id.uri} has no certificate`,
    );
  }
  if (svid.x509SvidKey.length === 0) {
    throw new WorkloadApiError(
      `The X.509-SVID for ${id.uri} has no private key`,
    );
  }
  const bundles = new Map<string, readonly Uint8Array[]>();
  for (const [key, bytes] of message.federatedBundles) {
    bundles.set(trustDomainOf(key), parseBundle(key, bytes));
  }
  // The SVIDs' own bundles win over a federated entry for the same domain;
  // the default SVID's wins over the others.
  for (const other of message.svids.slice(1).reverse()) {
    const td = parseSpiffeId(other.spiffeId).trustDomain;
    bundles.set(td, parseBundle(td, other.bundle));
  }
  bundles.set(id.trustDomain, parseBundle(id.trustDomain, svid.bundle));
  const keyPem = pemFromDer("PRIVATE KEY", svid.x509SvidKey);
  try {
    // The same checks as the SVID directory source: leaf rules, chain to
    // the own trust domain's bundle, key matching the leaf.
    const leafId = verifyOwnSvid(chain, keyPem, bundles);
    if (leafId.uri !== id.uri) {
      throw new WorkloadApiError(
        `The X.509-SVID's spiffe_id ${id.uri} differs from its leaf's URI SAN ${leafId.uri}`,
      );
    }
  } catch (e) {
    zero(keyPem);
    throw e;
  }
  return { id, chain, keyPem, bundles };
}

/** A bundle map key is a trust domain SPIFFE ID; a bare name is accepted too. */
function trustDomainOf(key: string): string {
  if (key.startsWith("spiffe://")) return parseSpiffeId(key).trustDomain;
  validateTrustDomain(key);
  return key;
}

function parseBundle(trustDomain: string, bytes: Uint8Array): Uint8Array[] {
  const certs = splitDerSequences(bytes);
  if (certs.length === 0) {
    throw new WorkloadApiError(
      `Empty X.509 bundle for trust domain ${trustDomain}`,
    );
  }
  return certs;
}
