// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * What the nexus API end-to-end tests share: an mTLS client per identity
 * against a real nexus process of a local cluster, a raw HTTPS request for
 * what that client cannot send (other methods), a poll for the lock state,
 * and tiny asserts on answers.
 *
 * @module
 */
import https from "node:https";
import assert from "node:assert/strict";
import { Cluster, type ClusterOptions } from "../scripts/cluster.ts";
import { type Reply, SpikeClient } from "../scripts/spike_client.ts";

/** The trust domain of test clusters. */
export const TD = "spike.ist";

/** One answer from nexus. */
export type Answer = Reply;

/** A running cluster plus clients by identity name. */
export class ApiFixture {
  /** The cluster. */
  readonly cluster: Cluster;
  readonly #clients = new Map<string, SpikeClient>();

  private constructor(cluster: Cluster) {
    this.cluster = cluster;
  }

  /**
   * Creates a cluster, issues the extra identities and starts it.
   *
   * @param options cluster options
   * @param identities extra SVID directories: name -> SPIFFE ID
   * @param start whether to start keepers and nexus and wait for unlock
   * @returns the fixture
   */
  static async create(
    options: ClusterOptions,
    identities: Record<string, string> = {},
    start = true,
  ): Promise<ApiFixture> {
    const cluster = await Cluster.create(options);
    const fixture = new ApiFixture(cluster);
    try {
      for (const [name, id] of Object.entries(identities)) {
        await cluster.issue(name, id);
      }
      if (start) {
        if (options.backend === "memory") await cluster.startNexus();
        else await cluster.start();
        await waitForStatus(fixture, (s) => s !== 503);
      }
    } catch (e) {
      await fixture.close();
      throw e;
    }
    return fixture;
  }

  /**
   * The client of an identity (opened on first use).
   *
   * @param name the SVID directory name
   * @returns the client
   */
  async as(name: string): Promise<SpikeClient> {
    let client = this.#clients.get(name);
    if (!client) {
      client = await SpikeClient.open(
        this.cluster.svidDir(name),
        this.cluster.nexusUrl,
        { keepAlive: false, timeoutMs: 20_000 },
      );
      this.#clients.set(name, client);
    }
    return client;
  }

  /**
   * Posts as an identity.
   *
   * @param name the SVID directory name
   * @param route path and query
   * @param body the body (a value is sent as JSON)
   * @param contentType the content type
   * @returns the answer
   */
  async post(
    name: string,
    route: string,
    body: unknown = {},
    contentType?: string,
  ): Promise<Answer> {
    return await (await this.as(name)).post(route, body, contentType);
  }

  /** Closes the clients and the cluster. */
  async close(): Promise<void> {
    for (const client of this.#clients.values()) await client.close();
    this.#clients.clear();
    await this.cluster.close();
  }
}

/**
 * Polls a cheap data call (superuser secret list) until its status passes
 * `done`; nexus answers 503 there until it has its root key.
 *
 * @param fixture the fixture
 * @param done the wanted status
 * @param timeoutMs how long to wait
 */
export async function waitForStatus(
  fixture: ApiFixture,
  done: (status: number) => boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    try {
      last = (await fixture.post("superuser", "/v1/store/secrets?action=list"))
        .status;
      if (done(last)) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Nexus still answered ${last} after ${timeoutMs} ms`);
}

/**
 * Sends one request with any method through `node:https`, presenting the
 * SVID of `dir` (the server's certificate is not checked: only the answer
 * matters here).
 *
 * @param url the full URL
 * @param method the HTTP method
 * @param dir the SVID directory
 * @returns status and body text
 */
export async function rawRequest(
  url: string,
  method: string,
  dir: string,
): Promise<{ status: number; text: string }> {
  const [cert, key] = await Promise.all([
    Deno.readTextFile(`${dir}/svid.pem`),
    Deno.readTextFile(`${dir}/svid_key.pem`),
  ]);
  return await new Promise((resolve, reject) => {
    const req = https.request(url, {
      method,
      cert,
      key,
      rejectUnauthorized: false,
      agent: false,
    }, (res) => {
      const chunks: Uint8Array[] = [];
      res.on("data", (c: Uint8Array) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          text: new TextDecoder().decode(
            new Uint8Array(chunks.flatMap((c) => [...c])),
          ),
        }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * Asserts the status and, for errors, the `err` code of an answer.
 *
 * @param answer the answer
 * @param status the wanted status
 * @param err the wanted `err` code, if any
 */
export function expectStatus(
  answer: Answer,
  status: number,
  err?: string,
): void {
  assert.equal(
    answer.status,
    status,
    `Status ${answer.status}, body ${new TextDecoder().decode(answer.bytes)}`,
  );
  if (err !== undefined) assert.equal(answer.json?.err, err);
}
