// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A JSON-over-mTLS client with one SVID directory, for one server role:
 * what the cluster harness, the end-to-end tests and the reliability suite
 * use to talk to nexus and keepers from the test process.
 *
 * @module
 */
import {
  type FileSvidSource,
  openFileSvidSource,
} from "../lib/spiffe/file_source.ts";
import { createMtlsClient, type MtlsClient } from "../lib/mtls/client.ts";
import { hasRole, type Role } from "../lib/spiffe/roles.ts";

/** One answer from a server. */
export interface Reply {
  /** HTTP status. */
  readonly status: number;
  /** Response headers, lowercase names. */
  readonly headers: Record<string, string>;
  /** The raw body. */
  readonly bytes: Uint8Array;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  readonly json: Record<string, unknown> | undefined;
}

/** A long-lived mTLS client with one identity, for one server role. */
export class SpikeClient {
  readonly #source: FileSvidSource;
  readonly #client: MtlsClient;
  readonly #baseUrl: string;

  private constructor(
    source: FileSvidSource,
    client: MtlsClient,
    baseUrl: string,
  ) {
    this.#source = source;
    this.#client = client;
    this.#baseUrl = baseUrl;
  }

  /**
   * Opens a client with the SVID directory `dir`.
   *
   * @param dir the SVID directory
   * @param baseUrl the server URL
   * @param options the server's role (default nexus), keep-alive (default
   * true), the time limit of a request (default 15 s)
   * @returns the client
   */
  static async open(
    dir: string,
    baseUrl: string,
    options: { role?: Role; keepAlive?: boolean; timeoutMs?: number } = {},
  ): Promise<SpikeClient> {
    const source = await openFileSvidSource(dir, { watch: false });
    const role = options.role ?? "nexus";
    const client = createMtlsClient({
      source,
      authorizeServer: (id) => hasRole(id, role),
      keepAlive: options.keepAlive ?? true,
      timeoutMs: options.timeoutMs ?? 15_000,
    });
    return new SpikeClient(source, client, baseUrl);
  }

  /**
   * Posts a body: a value is sent as JSON, bytes and strings as they are.
   *
   * @param route path and query
   * @param body the body
   * @param contentType the content type (default JSON)
   * @returns the answer
   * @throws {MtlsClientError} when no answer came
   */
  async post(
    route: string,
    body: unknown = {},
    contentType = "application/json",
  ): Promise<Reply> {
    const payload = body instanceof Uint8Array || typeof body === "string"
      ? body
      : JSON.stringify(body);
    const res = await this.#client.post(`${this.#baseUrl}${route}`, payload, {
      contentType,
    });
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(new TextDecoder().decode(res.body));
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, bytes: res.body, json };
  }

  /** Closes the client and its SVID source. */
  async close(): Promise<void> {
    this.#client.close();
    this.#source.close();
    await this.#source.settled();
  }
}
