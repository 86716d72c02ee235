// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Fixtures shared by the mTLS server and client tests: X.509 material built
 * straight from the dev CA, a source whose rotations the test triggers, and
 * a raw `node:tls` client that shows what a server presents and answers.
 *
 * @module
 */
import "reflect-metadata";
import { Buffer } from "node:buffer";
import tls from "node:tls";
import * as x509 from "@peculiar/x509";
import { type DevCa, type IssuedSvid, issueSvid } from "../scripts/dev_ca.ts";
import { parseSpiffeId } from "../lib/spiffe/id.ts";
import type { SvidSource, X509Material } from "../lib/spiffe/source.ts";

/** Builds material from an issued SVID and the CAs to trust. */
export function materialOf(
  id: string,
  svid: IssuedSvid,
  trusted: readonly DevCa[],
): X509Material {
  const bundles = new Map<string, Uint8Array[]>();
  for (const ca of trusted) {
    const list = bundles.get(ca.trustDomain) ?? [];
    list.push(new Uint8Array(ca.cert.rawData));
    bundles.set(ca.trustDomain, list);
  }
  return {
    id: parseSpiffeId(id),
    chain: [svid.certDer],
    keyPem: new TextEncoder().encode(svid.keyPem),
    bundles,
  };
}

/** Issues an SVID for `id` under `ca` and wraps it as material trusting `trusted`. */
export async function issueMaterial(
  ca: DevCa,
  id: string,
  trusted: readonly DevCa[] = [ca],
): Promise<X509Material> {
  return materialOf(id, await issueSvid(ca, id), trusted);
}

/** The CA certificate and key themselves, shaped like an issued SVID. */
export async function caAsSvid(ca: DevCa): Promise<IssuedSvid> {
  const keyDer = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", ca.keys.privateKey),
  );
  return {
    certDer: new Uint8Array(ca.cert.rawData),
    certPem: ca.cert.toString("pem"),
    keyPem: x509.PemConverter.encode(keyDer.buffer, "PRIVATE KEY"),
    keyDer,
  };
}

/** A source under the test's control: `rotate` plays an SVID rotation. */
export class TestSource implements SvidSource {
  #material: X509Material;
  #listeners = new Set<(material: X509Material) => void>();

  /** Starts with `material`. */
  constructor(material: X509Material) {
    this.#material = material;
  }
  /** The current material. */
  current(): X509Material {
    return this.#material;
  }
  /** Registers a rotation listener. */
  onUpdate(listener: (material: X509Material) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  /** Replaces the material and tells every listener. */
  rotate(material: X509Material): void {
    this.#material = material;
    for (const listener of this.#listeners) listener(material);
  }
  /** How many listeners are registered (to prove unsubscription). */
  get listenerCount(): number {
    return this.#listeners.size;
  }
  /** Drops the listeners. */
  close(): void {
    this.#listeners.clear();
  }
  /** Same as close. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** What a raw TLS client saw. */
export interface RawOutcome {
  /** DER of the certificate the server presented, when the handshake got that far. */
  serverCert?: Uint8Array;
  /** Every byte the server answered. */
  response: string;
  /** The error the socket reported, if any. */
  error?: string;
}

/**
 * Opens a raw TLS connection, sends `request` (an HTTP/1.1 request text)
 * once connected, and collects the answer until the socket closes.
 *
 * @param port the server port on 127.0.0.1
 * @param identity client certificate and key (PEM); none sends no certificate
 * @param trusted PEM CAs to verify the server with
 * @param request the bytes to send
 */
export function rawExchange(
  port: number,
  identity: { cert: string; key: string } | undefined,
  trusted: readonly string[],
  request =
    "POST /probe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const outcome: RawOutcome = { response: "" };
    const options: tls.ConnectionOptions = {
      host: "127.0.0.1",
      port,
      ca: [...trusted],
      checkServerIdentity: () => undefined,
    };
    if (identity !== undefined) {
      options.cert = identity.cert;
      options.key = Buffer.from(identity.key);
    }
    const socket = tls.connect(options, () => {
      const raw = socket.getPeerCertificate().raw;
      if (raw !== undefined) outcome.serverCert = new Uint8Array(raw);
      socket.write(request);
    });
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => outcome.response += chunk);
    socket.on("error", (e: Error) => outcome.error ??= e.message);
    socket.on("close", () => resolve(outcome));
  });
}

/** Polls `condition` until it holds or five seconds pass. */
export async function eventually(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** PEM of a CA certificate. */
export function caPem(ca: DevCa): string {
  return ca.cert.toString("pem");
}

/** Compares bytes. */
export function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length &&
    a.every((v, i) => v === b[i]);
}
