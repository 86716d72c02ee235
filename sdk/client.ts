// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The {@linkcode Spike} client: this workload's SVID (Workload API or SVID
 * directory, rotations followed live), one keep-alive mTLS connection pool
 * that only talks to a nexus identity, and the secret and cipher calls in
 * upstream SPIKE's wire shapes.
 *
 * @module
 */
import process from "node:process";
import { ConfigError, envPositiveDuration } from "../lib/config/env.ts";
import { createMtlsClient, type MtlsClient } from "../lib/mtls/client.ts";
import { hasRole } from "../lib/spiffe/roles.ts";
import type { SvidSource } from "../lib/spiffe/source.ts";
import {
  SpikeBadRequestError,
  SpikeConfigError,
  SpikeLockedError,
  SpikeNotFoundError,
  SpikeServerError,
  SpikeTransportError,
} from "./errors.ts";
import { Secret } from "./secret.ts";
import {
  type ByteJson,
  ByteJsonWriter,
  isUtf8,
  wipeByteJson,
} from "./_secret_json.ts";
import { type CallSpec, type RetrySettings, Transport } from "./_transport.ts";

/** Where nexus is when neither the options nor `SPIKE_NEXUS_API_URL` say. */
const DEFAULT_NEXUS_URL = "https://localhost:8553";

/**
 * Where this workload's X.509-SVID comes from: an SVID directory in the
 * layout `spiffe-helper` writes, a SPIFFE Workload API endpoint (what a
 * SPIRE agent serves), or a source you opened yourself (not closed by the
 * client).
 *
 * @example An SVID directory, as `spiffe-helper` writes it (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * import process from "node:process";
 *
 * await using spike = await Spike.connect({
 *   source: { svidDir: process.env.SPIKE_SVID_DIR! },
 * });
 * assert.match(spike.spiffeId, /^spiffe:\/\/spike\.ist\//);
 * ```
 */
export type SourceOption =
  | { readonly svidDir: string }
  | { readonly endpoint: string }
  | SvidSource;

/** Backoff and deadline of calls to nexus.
 *
 * @example A short deadline for a latency-sensitive call site (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using spike = await Spike.connect({
 *   retry: { deadlineMs: 5_000, initialDelayMs: 100, maxDelayMs: 1_000 },
 * });
 * assert.equal((await spike.metadata("docs/db")).path, "docs/db");
 * ```
 */
export interface RetryOptions {
  /**
   * Longest time one call may take, retries and failover included.
   *
   * @default {30000}
   */
  deadlineMs?: number;
  /**
   * First wait after every nexus URL failed once; doubles each round.
   *
   * @default {200}
   */
  initialDelayMs?: number;
  /**
   * Longest wait between rounds.
   *
   * @default {5000}
   */
  maxDelayMs?: number;
}

/** Options of {@linkcode Spike.connect}; every one has a default.
 *
 * @example Two nexus replicas, the first one down (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * import process from "node:process";
 *
 * await using spike = await Spike.connect({
 *   nexusUrl: ["https://127.0.0.1:1", process.env.SPIKE_NEXUS_API_URL!],
 *   attemptTimeoutMs: 2_000,
 * });
 * assert.equal(spike.nexusUrls.length, 2);
 * assert.ok(await spike.getValue("docs/db", "user", { as: "text" }));
 * ```
 */
export interface ConnectOptions {
  /**
   * The nexus URL, or several (HA replicas), tried in order with failover.
   *
   * @default {`SPIKE_NEXUS_API_URL` (a comma list is allowed), else "https://localhost:8553"}
   */
  nexusUrl?: string | readonly string[];
  /**
   * Where this workload's SVID comes from.
   *
   * @default {`SPIKE_SVID_DIR` when set, else the Workload API at `SPIFFE_ENDPOINT_SOCKET`}
   */
  source?: SourceOption;
  /**
   * Bound on one attempt at one URL (connect, handshake, answer).
   *
   * @default {`SPIKE_HTTP_CLIENT_TIMEOUT`, else 10000}
   */
  attemptTimeoutMs?: number;
  /**
   * Backoff and deadline; `false` tries each URL once.
   *
   * @default {{ deadlineMs: 30000, initialDelayMs: 200, maxDelayMs: 5000 }}
   */
  retry?: RetryOptions | false;
}

/** What every call accepts.
 *
 * @example Cancelling a call (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using spike = await Spike.connect();
 * const aborted = AbortSignal.abort();
 * await assert.rejects(spike.get("docs/db", { signal: aborted }));
 * ```
 */
export interface CallOptions {
  /** Cancels the call, retries included; it rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Overrides the client's deadline for this call, in milliseconds. */
  deadlineMs?: number;
}

/** Options of {@linkcode Spike.get}.
 *
 * @example Reading an older version (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using spike = await Spike.connect();
 * using first = await spike.get("docs/db", { version: 1 });
 * assert.equal(first.version, 1);
 * ```
 */
export interface GetOptions extends CallOptions {
  /**
   * The version to read.
   *
   * @default {the current version}
   */
  version?: number;
}

/** Options of {@linkcode Spike.getValue}.
 *
 * @example Bytes or text (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using spike = await Spike.connect();
 * const bytes = await spike.getValue("docs/db", "user");
 * const text = await spike.getValue("docs/db", "user", { as: "text" });
 * assert.equal(new TextDecoder().decode(bytes), text);
 * ```
 */
export interface GetValueOptions extends GetOptions {
  /**
   * `"text"` returns a string (which cannot be zeroed); `"bytes"` returns
   * bytes the caller zeroes.
   *
   * @default {"bytes"}
   */
  as?: "bytes" | "text";
}

/** Options of {@linkcode Spike.put}.
 *
 * @example Writing only over the version read (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * import { SpikeConflictError } from "./mod.ts";
 *
 * await using spike = await Spike.connect();
 * await spike.put("docs/counter", { n: "1" }, { cas: 0 });
 * await assert.rejects(
 *   spike.put("docs/counter", { n: "1" }, { cas: 0 }),
 *   SpikeConflictError,
 * );
 * ```
 */
export interface PutOptions extends CallOptions {
  /**
   * Compare-and-set: write only if the current version is this one (0: the
   * path has no live version). An extension of this nexus; upstream SPIKE
   * ignores it and always writes.
   */
  cas?: number;
}

/** Options of {@linkcode Spike.list}.
 *
 * @example Listing in small pages (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using spike = await Spike.connect();
 * const paths = await spike.list({ prefix: "docs/", pageSize: 2 });
 * assert.ok(paths.every((p) => p.startsWith("docs/")));
 * ```
 */
export interface ListOptions extends CallOptions {
  /**
   * Only paths starting with this text. Sent to nexus (an extension of
   * this nexus); the SDK filters the answer too, so an upstream nexus,
   * which ignores the field and returns every path, gives the same result.
   */
  prefix?: string;
  /** Paths per page asked of nexus (an extension of this nexus). */
  pageSize?: number;
}

/** Options of {@linkcode Spike.delete} and {@linkcode Spike.undelete}.
 *
 * @example Deleting two versions at once (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using spike = await Spike.connect();
 * await spike.put("docs/many", { n: "1" });
 * await spike.put("docs/many", { n: "2" });
 * await spike.put("docs/many", { n: "3" });
 * await spike.delete("docs/many", { versions: [1, 2] });
 * assert.equal((await spike.metadata("docs/many")).oldestVersion, 3);
 * ```
 */
export interface VersionsOptions extends CallOptions {
  /**
   * The versions; 0 stands for the current version.
   *
   * @default {the current version}
   */
  versions?: readonly number[];
}

/** Options of {@linkcode Spike.watch}.
 *
 * @example Stopping a watch (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using spike = await Spike.connect();
 * const stop = new AbortController();
 * const versions: number[] = [];
 * for await (using secret of spike.watch("docs/db", { intervalMs: 1_000, signal: stop.signal })) {
 *   versions.push(secret.version!);
 *   stop.abort();
 * }
 * assert.equal(versions.length, 1);
 * ```
 */
export interface WatchOptions {
  /**
   * Time between two checks for a new version.
   *
   * @default {30000}
   */
  intervalMs?: number;
  /** Ends the watch: the iteration finishes without an error. */
  signal?: AbortSignal;
}

/** Options of the stream forms of the cipher.
 *
 * @example Refusing an input that is too large (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * import { SpikeBadRequestError } from "./mod.ts";
 *
 * await using spike = await Spike.connect();
 * const big = ReadableStream.from([new Uint8Array(2048)]);
 * await assert.rejects(spike.encryptStream(big, { maxBytes: 1024 }), SpikeBadRequestError);
 * ```
 */
export interface StreamOptions extends CallOptions {
  /**
   * The most bytes read from the input; more is refused before anything is
   * sent (nexus takes 65,520 plaintext bytes by default).
   *
   * @default {1048576}
   */
  maxBytes?: number;
}

/** One version in {@linkcode SecretMetadata}.
 *
 * @example Telling live and deleted versions apart (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using spike = await Spike.connect();
 * const { versions } = await spike.metadata("docs/db");
 * const live = versions.filter((v) => v.deletedTime === null);
 * assert.ok(live.length >= 1);
 * ```
 */
export interface SecretVersionInfo {
  /** The version number. */
  readonly version: number;
  /** When the version was written. */
  readonly createdTime: Date;
  /** When it was deleted, or null while it is live. */
  readonly deletedTime: Date | null;
}

/** What nexus knows about a secret, without its values.
 *
 * @example When a secret last changed (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using spike = await Spike.connect();
 * const meta = await spike.metadata("docs/db");
 * assert.ok(meta.updatedTime.getTime() >= meta.createdTime.getTime());
 * ```
 */
export interface SecretMetadata {
  /** The secret's path. */
  readonly path: string;
  /** The highest live version; 0 when every version is deleted. */
  readonly currentVersion: number;
  /** The lowest live version; 0 when every version is deleted. */
  readonly oldestVersion: number;
  /** When the secret was first written. */
  readonly createdTime: Date;
  /** When it last changed. */
  readonly updatedTime: Date;
  /** How many versions nexus keeps. */
  readonly maxVersions: number;
  /** Every kept version, deleted ones included, oldest first. */
  readonly versions: readonly SecretVersionInfo[];
}

/** A readable input for the stream forms of the cipher.
 *
 * @example Encrypting an async iterable (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using spike = await Spike.connect();
 * async function* chunks() {
 *   yield new Uint8Array([1, 2]);
 *   yield new Uint8Array([3]);
 * }
 * const sealed = await spike.encryptStream(chunks());
 * assert.equal(new Uint8Array(await new Response(sealed).arrayBuffer())[0], 1);
 * ```
 */
export type ByteInput = ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

const SECRETS = "/v1/store/secrets";
const METADATA = "/v1/store/secrets/metadata";
const ENCRYPT = "/v1/cipher/encrypt";
const DECRYPT = "/v1/cipher/decrypt";
const OCTETS = "application/octet-stream";
const MAX_LIST_PAGES = 100_000;

function envUrls(): string[] {
  const raw = process.env.SPIKE_NEXUS_API_URL?.trim();
  if (!raw) return [DEFAULT_NEXUS_URL];
  return raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

function normalizeUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SpikeConfigError(`The nexus URL is not a URL: "${raw}"`);
  }
  if (url.protocol !== "https:") {
    throw new SpikeConfigError(`The nexus URL must use https: "${raw}"`);
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "") {
    throw new SpikeConfigError(
      `The nexus URL cannot have credentials, a query or a fragment: "${raw}"`,
    );
  }
  return url.href.replace(/\/+$/, "");
}

function positive(value: number | undefined, name: string): void {
  if (value !== undefined && !(Number.isFinite(value) && value >= 0)) {
    throw new SpikeConfigError(`${name} must be a number of milliseconds`);
  }
}

function retrySettings(options: ConnectOptions): RetrySettings {
  const retry = options.retry === false ? { deadlineMs: 0 } : options.retry;
  positive(retry?.deadlineMs, "retry.deadlineMs");
  positive(retry?.initialDelayMs, "retry.initialDelayMs");
  positive(retry?.maxDelayMs, "retry.maxDelayMs");
  positive(options.attemptTimeoutMs, "attemptTimeoutMs");
  let attemptTimeoutMs = options.attemptTimeoutMs;
  try {
    // Upstream's per-request timeout variable bounds one attempt here.
    attemptTimeoutMs ??= envPositiveDuration(
      "SPIKE_HTTP_CLIENT_TIMEOUT",
      10_000,
    );
  } catch (e) {
    if (e instanceof ConfigError) throw new SpikeConfigError(e.message);
    throw e;
  }
  return {
    deadlineMs: retry?.deadlineMs ?? 30_000,
    initialDelayMs: retry?.initialDelayMs ?? 200,
    maxDelayMs: retry?.maxDelayMs ?? 5_000,
    attemptTimeoutMs,
  };
}

function isSource(value: SourceOption): value is SvidSource {
  return typeof (value as SvidSource).current === "function";
}

async function openSource(option: SourceOption | undefined) {
  try {
    if (option === undefined) {
      const { openSvidSource } = await import("../lib/spiffe/open_source.ts");
      return await openSvidSource();
    }
    if (isSource(option)) return option;
    if ("svidDir" in option) {
      const { openFileSvidSource } = await import(
        "../lib/spiffe/file_source.ts"
      );
      return await openFileSvidSource(option.svidDir);
    }
    const { openWorkloadApiSource } = await import(
      "../lib/spiffe/workload_api.ts"
    );
    return await openWorkloadApiSource({ endpoint: option.endpoint });
  } catch (e) {
    if (
      e instanceof ConfigError || (e as Error)?.name === "EndpointAddressError"
    ) {
      throw new SpikeConfigError((e as Error).message, "data_invalid_input", e);
    }
    if (e instanceof Error && e.name !== "NotCapable") {
      throw new SpikeConfigError(
        `No X.509-SVID for this workload: ${e.message}`,
        "spiffe_failed_to_create_x509_source",
        e,
      );
    }
    throw e;
  }
}

function secretSubject(path: string): string {
  return `Secret "${path}"`;
}

function checkVersion(version: number | undefined, what: string): void {
  if (
    version !== undefined &&
    !(Number.isSafeInteger(version) && version >= 0)
  ) {
    throw new SpikeBadRequestError(
      `${what} must be a whole number from 0`,
      "data_invalid_input",
    );
  }
}

function dateOf(value: ByteJson | undefined, what: string): Date {
  const date = value instanceof Uint8Array
    ? new Date(new TextDecoder().decode(value))
    : new Date(NaN);
  if (Number.isNaN(date.getTime())) {
    throw new SpikeServerError(
      `SPIKE Nexus sent an invalid ${what}`,
      "data_unmarshal_failure",
      200,
    );
  }
  return date;
}

function numberOf(value: ByteJson | undefined): number {
  return typeof value === "number" ? value : 0;
}

function objectOf(value: ByteJson | undefined): Record<string, ByteJson> {
  return value !== null && typeof value === "object" &&
      !Array.isArray(value) && !(value instanceof Uint8Array)
    ? value
    : {};
}

async function collect(input: ByteInput, maxBytes: number) {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const iterable: AsyncIterable<Uint8Array> = Symbol.asyncIterator in input
    ? input as AsyncIterable<Uint8Array>
    : streamIterable(input as ReadableStream<Uint8Array>);
  try {
    for await (const chunk of iterable) {
      total += chunk.byteLength;
      if (total > maxBytes) {
        throw new SpikeBadRequestError(
          `The input is larger than ${maxBytes} bytes`,
          "data_invalid_input",
        );
      }
      chunks.push(chunk.slice());
    }
    const out = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      out.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return out;
  } finally {
    for (const chunk of chunks) chunk.fill(0);
  }
}

async function* streamIterable(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * A connection to SPIKE Nexus as this workload: read and write secrets and
 * use the cipher with the workload's SPIFFE identity, as its policies allow.
 *
 * @example Reading a database password (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * // SPIKE_NEXUS_API_URL and SPIKE_SVID_DIR (or SPIFFE_ENDPOINT_SOCKET)
 * // say where nexus and this workload's SVID are.
 * await using spike = await Spike.connect();
 * const password = await spike.getValue("docs/db", "password", { as: "text" });
 * assert.equal(password, "correct horse battery staple");
 * ```
 */
export class Spike implements AsyncDisposable {
  readonly #source: SvidSource;
  readonly #ownsSource: boolean;
  readonly #client: MtlsClient;
  readonly #transport: Transport;
  readonly #urls: readonly string[];
  #closed = false;

  private constructor(
    source: SvidSource,
    ownsSource: boolean,
    client: MtlsClient,
    urls: readonly string[],
    retry: RetrySettings,
  ) {
    this.#source = source;
    this.#ownsSource = ownsSource;
    this.#client = client;
    this.#urls = urls;
    this.#transport = new Transport(
      urls,
      client,
      () => this.spiffeId,
      retry,
    );
  }

  /**
   * Gets this workload's SVID (waiting for the first one) and prepares the
   * connection pool; no request is sent yet.
   *
   * @param options nexus URLs, SVID source, timeouts; all optional
   * @returns the client; close it with `close()` or `await using`
   * @throws {SpikeConfigError} for an invalid option or environment
   *   variable, or when no SVID can be had
   *
   * @example Connecting with explicit settings (needs a running nexus)
   * ```ts
   * import { Spike } from "./mod.ts";
   * import process from "node:process";
   * import assert from "node:assert/strict";
   *
   * const spike = await Spike.connect({
   *   nexusUrl: process.env.SPIKE_NEXUS_API_URL!.split(","),
   *   source: { svidDir: process.env.SPIKE_SVID_DIR! },
   *   retry: { deadlineMs: 10_000 },
   * });
   * try {
   *   assert.match(spike.spiffeId, /^spiffe:\/\//);
   * } finally {
   *   await spike.close();
   * }
   * ```
   */
  static async connect(options: ConnectOptions = {}): Promise<Spike> {
    const raw = options.nexusUrl === undefined
      ? envUrls()
      : typeof options.nexusUrl === "string"
      ? [options.nexusUrl]
      : [...options.nexusUrl];
    if (raw.length === 0) {
      throw new SpikeConfigError("At least one nexus URL is needed");
    }
    const urls = [...new Set(raw.map(normalizeUrl))];
    const retry = retrySettings(options);
    const ownsSource = options.source === undefined ||
      !isSource(options.source);
    const source = await openSource(options.source);
    try {
      const client = createMtlsClient({
        source,
        authorizeServer: (id) => hasRole(id, "nexus"),
        keepAlive: true,
        timeoutMs: retry.attemptTimeoutMs,
      });
      return new Spike(source, ownsSource, client, urls, retry);
    } catch (e) {
      if (ownsSource) source.close();
      if (e instanceof ConfigError) throw new SpikeConfigError(e.message);
      throw e;
    }
  }

  /** This workload's SPIFFE ID, from its current SVID. */
  get spiffeId(): string {
    return this.#source.current().id.uri;
  }

  /** The nexus URLs, in the order they are tried. */
  get nexusUrls(): readonly string[] {
    return this.#urls;
  }

  #spec(
    route: string,
    subject: string,
    safety: CallSpec["safety"],
    options: CallOptions,
    contentType?: string,
  ): CallSpec {
    if (this.#closed) {
      throw new SpikeTransportError("The SPIKE client is closed", {
        outcomeUnknown: false,
      });
    }
    return {
      route,
      subject,
      safety,
      deadlineMs: options.deadlineMs,
      signal: options.signal,
      ...(contentType === undefined ? {} : { contentType }),
    };
  }

  /**
   * Reads a secret: the current version, or the one asked for.
   *
   * @param path the secret's path, e.g. `apps/orders/db`
   * @param options the version, a signal, a deadline
   * @returns the values as bytes; zero them with `secret.zero()` or `using`
   * @throws {SpikeNotFoundError} when the path, or the version, does not
   *   exist or is deleted
   * @throws {SpikeDeniedError} when no policy grants `read` on the path
   *
   * @example Reading every value of a secret (needs a running nexus)
   * ```ts
   * import { Spike } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * await using spike = await Spike.connect();
   * using secret = await spike.get("docs/db");
   * assert.deepEqual(secret.keys(), ["password", "user"]);
   * assert.equal(secret.text("user"), "orders");
   * ```
   */
  async get(path: string, options: GetOptions = {}): Promise<Secret> {
    checkVersion(options.version, "The version");
    const request: Record<string, unknown> = { path };
    if (options.version !== undefined) request.version = options.version;
    const answer = await this.#transport.json(
      this.#spec(
        `${SECRETS}?action=get`,
        secretSubject(path),
        "idempotent",
        options,
      ),
      request,
    );
    const values = new Map<string, Uint8Array>();
    const data = answer.data;
    try {
      if (data !== null && data !== undefined) {
        for (const [key, value] of Object.entries(objectOf(data))) {
          if (!(value instanceof Uint8Array)) {
            throw new SpikeServerError(
              `SPIKE Nexus sent a value of ${
                secretSubject(path)
              } that is not a string`,
              "data_unmarshal_failure",
              200,
            );
          }
          values.set(key, value);
        }
      }
    } catch (e) {
      wipeByteJson(answer);
      throw e;
    }
    return new Secret(path, values, options.version || undefined);
  }

  /**
   * Reads one value of a secret, as bytes (the default) or as text.
   *
   * @param path the secret's path
   * @param key the key within the secret
   * @param options `as: "text"` for a string, the version, a signal
   * @returns the value
   * @throws {SpikeNotFoundError} when the secret or the key is missing
   * @throws {SpikeDeniedError} when no policy grants `read` on the path
   *
   * @example Reading a password as bytes and clearing it (needs a running nexus)
   * ```ts
   * import { Spike, zero } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * await using spike = await Spike.connect();
   * const password = await spike.getValue("docs/db", "password");
   * try {
   *   assert.equal(password.length, 28);
   * } finally {
   *   zero(password);
   * }
   * ```
   */
  getValue(
    path: string,
    key: string,
    options: GetValueOptions & { as: "text" },
  ): Promise<string>;
  getValue(
    path: string,
    key: string,
    options?: GetValueOptions & { as?: "bytes" },
  ): Promise<Uint8Array>;
  async getValue(
    path: string,
    key: string,
    options: GetValueOptions = {},
  ): Promise<Uint8Array | string> {
    const secret = await this.get(path, options);
    try {
      const bytes = secret.bytes(key);
      if (bytes === undefined) {
        throw new SpikeNotFoundError(
          `${secretSubject(path)} has no key "${key}"`,
        );
      }
      return options.as === "text" ? secret.text(key)! : bytes.slice();
    } finally {
      secret.zero();
    }
  }

  /**
   * Writes a new version of a secret. Text values are sent as they are;
   * byte values must be UTF-8 and are never turned into strings here.
   *
   * @param path the secret's path
   * @param values key -> value
   * @param options `cas` (compare-and-set), a signal, a deadline
   * @throws {SpikeConflictError} when `cas` does not match the current version
   * @throws {SpikeDeniedError} when no policy grants `write` on the path
   * @throws {SpikeBadRequestError} for an invalid path, key or value
   * @throws {SpikeTransportError} with `outcomeUnknown` when the write was
   *   sent but no answer came (it is not retried: it might apply twice)
   *
   * @example Writing and reading back (needs a running nexus)
   * ```ts
   * import { Spike } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * await using spike = await Spike.connect();
   * await spike.put("docs/scratch", { token: "t-1" });
   * assert.equal(
   *   await spike.getValue("docs/scratch", "token", { as: "text" }),
   *   "t-1",
   * );
   * ```
   */
  async put(
    path: string,
    values: Readonly<Record<string, string | Uint8Array>>,
    options: PutOptions = {},
  ): Promise<void> {
    checkVersion(options.cas, "cas");
    const encoder = new TextEncoder();
    const writer = new ByteJsonWriter()
      .raw(`{"path":${JSON.stringify(path)},"values":{`);
    let first = true;
    for (const [key, value] of Object.entries(values)) {
      const bytes = typeof value === "string" ? encoder.encode(value) : value;
      if (!isUtf8(bytes)) {
        writer.finish().fill(0);
        throw new SpikeBadRequestError(
          `The value of key "${key}" is not UTF-8 text`,
          "data_invalid_input",
        );
      }
      writer.raw(`${first ? "" : ","}${JSON.stringify(key)}:`).string(bytes);
      if (typeof value === "string") bytes.fill(0);
      first = false;
    }
    writer.raw("}");
    if (options.cas !== undefined) writer.raw(`,"cas":${options.cas}`);
    const body = writer.raw("}").finish();
    try {
      const answer = await this.#transport.json(
        this.#spec(SECRETS, secretSubject(path), "write", options),
        body,
      );
      wipeByteJson(answer);
    } finally {
      body.fill(0);
    }
  }

  /**
   * Lists the secret paths this workload may list, following nexus's pages.
   * Needs a policy with `list` on `spike/system/secret`; nexus then shows
   * only the paths a policy grants `list` on.
   *
   * @param options a prefix, a page size, a signal
   * @returns the paths, sorted
   * @throws {SpikeDeniedError} when no policy grants listing
   *
   * @example Listing under a prefix (needs a running nexus)
   * ```ts
   * import { Spike } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * await using spike = await Spike.connect();
   * const paths = await spike.list({ prefix: "docs/" });
   * assert.ok(paths.includes("docs/db"));
   * ```
   */
  async list(options: ListOptions = {}): Promise<string[]> {
    const { prefix, pageSize } = options;
    if (
      pageSize !== undefined &&
      !(Number.isSafeInteger(pageSize) && pageSize > 0)
    ) {
      throw new SpikeBadRequestError(
        "pageSize must be a whole number above 0",
        "data_invalid_input",
      );
    }
    const paths: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      // No field at all is upstream's request, answered with every path.
      const request: Record<string, unknown> = {};
      if (prefix !== undefined) request.prefix = prefix;
      if (after !== undefined) request.after = after;
      if (pageSize !== undefined) request.limit = pageSize;
      const answer = await this.#transport.json(
        this.#spec(
          `${SECRETS}?action=list`,
          "Secret list",
          "idempotent",
          options,
        ),
        request,
      );
      const decoder = new TextDecoder();
      const keys = Array.isArray(answer.keys) ? answer.keys : [];
      for (const key of keys) {
        if (key instanceof Uint8Array) paths.push(decoder.decode(key));
      }
      const next = answer.next instanceof Uint8Array
        ? decoder.decode(answer.next)
        : "";
      wipeByteJson(answer);
      if (next === "") break;
      if (next === after) {
        throw new SpikeServerError(
          "SPIKE Nexus repeated a list cursor",
          "data_unmarshal_failure",
          200,
        );
      }
      after = next;
    }
    const selected = prefix === undefined
      ? paths
      : paths.filter((p) => p.startsWith(prefix));
    return [...new Set(selected)].sort();
  }

  #versionsCall(
    action: "delete" | "undelete",
    path: string,
    options: VersionsOptions,
  ): Promise<void> {
    const versions = options.versions ?? [];
    for (const v of versions) checkVersion(v, "Each version");
    // "The current version" moves once acted on: sending it twice could
    // touch two versions, so only explicit versions are retried freely.
    const safety = versions.length > 0 && !versions.includes(0)
      ? "idempotent"
      : "write";
    return this.#transport.json(
      this.#spec(
        `${SECRETS}?action=${action}`,
        secretSubject(path),
        safety,
        options,
      ),
      { path, versions },
    ).then(wipeByteJson);
  }

  /**
   * Deletes versions of a secret (soft delete: `undelete` brings them back).
   *
   * @param path the secret's path
   * @param options the versions (default: the current one), a signal
   * @throws {SpikeNotFoundError} when the path does not exist
   * @throws {SpikeDeniedError} when no policy grants `write` on the path
   *
   * @example Deleting and undeleting (needs a running nexus)
   * ```ts
   * import { Spike, SpikeNotFoundError } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * await using spike = await Spike.connect();
   * await spike.put("docs/old", { k: "v" });
   * await spike.delete("docs/old");
   * await assert.rejects(spike.get("docs/old"), SpikeNotFoundError);
   * await spike.undelete("docs/old");
   * assert.equal(await spike.getValue("docs/old", "k", { as: "text" }), "v");
   * ```
   */
  delete(path: string, options: VersionsOptions = {}): Promise<void> {
    return this.#versionsCall("delete", path, options);
  }

  /**
   * Brings deleted versions of a secret back.
   *
   * @param path the secret's path
   * @param options the versions (default: the current one, or the newest
   *   deleted one when every version is deleted), a signal
   * @throws {SpikeNotFoundError} when the path does not exist or nothing
   *   was deleted
   * @throws {SpikeDeniedError} when no policy grants `write` on the path
   *
   * @example Undeleting one version (needs a running nexus)
   * ```ts
   * import { Spike } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * await using spike = await Spike.connect();
   * await spike.put("docs/versions", { n: "1" });
   * await spike.put("docs/versions", { n: "2" });
   * await spike.delete("docs/versions", { versions: [1] });
   * await spike.undelete("docs/versions", { versions: [1] });
   * assert.equal(
   *   await spike.getValue("docs/versions", "n", { version: 1, as: "text" }),
   *   "1",
   * );
   * ```
   */
  undelete(path: string, options: VersionsOptions = {}): Promise<void> {
    return this.#versionsCall("undelete", path, options);
  }

  /**
   * Reads a secret's metadata: versions and times, no values.
   *
   * @param path the secret's path
   * @param options the version that must exist, a signal
   * @returns the metadata
   * @throws {SpikeNotFoundError} when the path (or its current version) is
   *   missing or deleted
   * @throws {SpikeDeniedError} when no policy grants `read` on the path
   *
   * @example Reading the current version number (needs a running nexus)
   * ```ts
   * import { Spike } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * await using spike = await Spike.connect();
   * const meta = await spike.metadata("docs/db");
   * assert.ok(meta.currentVersion >= 1);
   * assert.ok(meta.createdTime instanceof Date);
   * ```
   */
  async metadata(
    path: string,
    options: GetOptions = {},
  ): Promise<SecretMetadata> {
    checkVersion(options.version, "The version");
    const request: Record<string, unknown> = { path };
    if (options.version !== undefined) request.version = options.version;
    const answer = await this.#transport.json(
      this.#spec(
        `${METADATA}?action=get`,
        secretSubject(path),
        "idempotent",
        options,
      ),
      request,
    );
    try {
      const meta = objectOf(answer.metadata);
      const versions = Object.entries(objectOf(answer.versions)).map(
        ([key, entry]) => {
          const info = objectOf(entry);
          const deleted = info.deletedTime;
          return {
            // Upstream's SQLite store sends version 0 in every entry; the
            // map key is then the only number.
            version: numberOf(info.version) || Number(key),
            createdTime: dateOf(info.createdTime, "version time"),
            deletedTime: deleted instanceof Uint8Array
              ? dateOf(deleted, "deletion time")
              : null,
          };
        },
      ).sort((a, b) => a.version - b.version);
      return {
        path,
        currentVersion: numberOf(meta.currentVersion),
        oldestVersion: numberOf(meta.oldestVersion),
        createdTime: dateOf(meta.createdTime, "creation time"),
        updatedTime: dateOf(meta.updatedTime, "update time"),
        maxVersions: numberOf(meta.maxVersions),
        versions,
      };
    } finally {
      wipeByteJson(answer);
    }
  }

  /**
   * Encrypts bytes with nexus's cipher key (AES-256-GCM), in upstream's
   * stream format `0x01 ‖ nonce ‖ ciphertext ‖ tag`. Needs a policy with
   * `execute` on `spike/system/cipher/exec`.
   *
   * @param plaintext the bytes to encrypt (not modified)
   * @param options a signal, a deadline
   * @returns the ciphertext
   * @throws {SpikeDeniedError} when no policy grants the cipher
   * @throws {SpikeBadRequestError} when the plaintext is over nexus's limit
   *
   * @example Encrypting and decrypting (needs a running nexus)
   * ```ts
   * import { Spike } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * await using spike = await Spike.connect();
   * const data = new TextEncoder().encode("card 4111");
   * const sealed = await spike.encrypt(data);
   * assert.equal(sealed[0], 1);
   * assert.deepEqual(await spike.decrypt(sealed), data);
   * ```
   */
  async encrypt(
    plaintext: Uint8Array,
    options: CallOptions = {},
  ): Promise<Uint8Array> {
    const result = await this.#transport.post(
      this.#spec(ENCRYPT, "Cipher encrypt", "idempotent", options, OCTETS),
      plaintext,
    );
    return result.body;
  }

  /**
   * Decrypts what {@linkcode Spike.encrypt} (or upstream's stream mode)
   * produced.
   *
   * @param ciphertext `0x01 ‖ nonce ‖ ciphertext ‖ tag`
   * @param options a signal, a deadline
   * @returns the plaintext; zero it after use
   * @throws {SpikeBadRequestError} when the ciphertext does not
   *   authenticate or is malformed
   * @throws {SpikeDeniedError} when no policy grants the cipher
   *
   * @example Decrypting (needs a running nexus)
   * ```ts
   * import { Spike, zero } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * await using spike = await Spike.connect();
   * const sealed = await spike.encrypt(new Uint8Array([1, 2, 3]));
   * const plain = await spike.decrypt(sealed);
   * assert.deepEqual([...plain], [1, 2, 3]);
   * zero(plain);
   * ```
   */
  async decrypt(
    ciphertext: Uint8Array,
    options: CallOptions = {},
  ): Promise<Uint8Array> {
    const result = await this.#transport.post(
      this.#spec(DECRYPT, "Cipher decrypt", "idempotent", options, OCTETS),
      ciphertext,
    );
    return result.body;
  }

  /**
   * Encrypts a stream: reads it whole (at most `maxBytes`), encrypts, and
   * returns the ciphertext as a stream.
   *
   * @param input a `ReadableStream` or any async iterable of bytes (a Node
   *   file stream, a request body)
   * @param options the input limit, a signal, a deadline
   * @returns the ciphertext stream
   * @throws {SpikeBadRequestError} when the input is over the limit
   *
   * @example Encrypting a stream (needs a running nexus)
   * ```ts
   * import { Spike } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * await using spike = await Spike.connect();
   * const input = ReadableStream.from([new Uint8Array([7, 7]), new Uint8Array([7])]);
   * const sealed = await spike.encryptStream(input);
   * const plain = await spike.decryptStream(sealed);
   * assert.deepEqual([...new Uint8Array(await new Response(plain).arrayBuffer())], [7, 7, 7]);
   * ```
   */
  async encryptStream(
    input: ByteInput,
    options: StreamOptions = {},
  ): Promise<ReadableStream<Uint8Array>> {
    const plaintext = await collect(input, options.maxBytes ?? 1_048_576);
    try {
      return streamOf(await this.encrypt(plaintext, options));
    } finally {
      plaintext.fill(0);
    }
  }

  /**
   * Decrypts a stream produced by {@linkcode Spike.encryptStream} or
   * {@linkcode Spike.encrypt}.
   *
   * @param input the ciphertext as a stream or async iterable
   * @param options the input limit, a signal, a deadline
   * @returns the plaintext stream
   * @throws {SpikeBadRequestError} when the input is over the limit or
   *   does not authenticate
   *
   * @example Decrypting a stream (needs a running nexus)
   * ```ts
   * import { Spike } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * await using spike = await Spike.connect();
   * const sealed = await spike.encrypt(new TextEncoder().encode("hi"));
   * const plain = await spike.decryptStream(ReadableStream.from([sealed]));
   * assert.equal(await new Response(plain).text(), "hi");
   * ```
   */
  async decryptStream(
    input: ByteInput,
    options: StreamOptions = {},
  ): Promise<ReadableStream<Uint8Array>> {
    const ciphertext = await collect(input, options.maxBytes ?? 1_048_576);
    return streamOf(await this.decrypt(ciphertext, options));
  }

  /**
   * Follows a secret: yields its current version at once (or as soon as it
   * exists), then each newer version, checking every `intervalMs`. A
   * missing secret, a locked nexus and network failures only delay the
   * next value; a denial ends the iteration with its error. Each yielded
   * secret is the caller's to zero.
   *
   * @param path the secret's path
   * @param options the check interval and a signal that ends the watch
   * @returns the versions, as they appear
   * @throws {SpikeDeniedError} when no policy grants `read` on the path
   *
   * @example Reloading a credential when it changes (needs a running nexus)
   * ```ts
   * import { Spike } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * await using spike = await Spike.connect();
   * const stop = new AbortController();
   * for await (using secret of spike.watch("docs/db", { signal: stop.signal })) {
   *   assert.ok(secret.version! >= 1);
   *   assert.equal(secret.text("user"), "orders");
   *   stop.abort(); // a service keeps looping and reconnects its pool here
   * }
   * ```
   */
  async *watch(
    path: string,
    options: WatchOptions = {},
  ): AsyncGenerator<Secret, void, undefined> {
    const interval = options.intervalMs ?? 30_000;
    const signal = options.signal;
    let seen = 0;
    while (!signal?.aborted) {
      try {
        const call = signal === undefined ? {} : { signal };
        const { currentVersion } = await this.metadata(path, call);
        if (currentVersion !== 0 && currentVersion !== seen) {
          const secret = await this.get(path, {
            ...call,
            version: currentVersion,
          });
          seen = currentVersion;
          yield secret;
        }
      } catch (e) {
        if (signal?.aborted) return;
        const transient = e instanceof SpikeNotFoundError ||
          e instanceof SpikeLockedError || e instanceof SpikeTransportError;
        if (!transient || this.#closed) throw e;
      }
      await sleep(interval, signal);
    }
  }

  /**
   * Drops the connections and, when the client opened it, stops the SVID
   * source (zeroing its key). Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.close();
    if (this.#ownsSource) {
      this.#source.close();
      const settled = (this.#source as { settled?: () => Promise<void> })
        .settled;
      await settled?.call(this.#source);
    }
  }

  /** Same as {@linkcode Spike.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
