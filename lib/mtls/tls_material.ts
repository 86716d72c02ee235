// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Conversion between SPIKE's X.509 material and the shapes `node:tls`
 * expects, in both directions: own SVID and bundles to TLS options, and the
 * peer certificate `node:tls` reports back to DER for SVID verification.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { DetailedPeerCertificate, PeerCertificate } from "node:tls";
import type { X509Material } from "../spiffe/source.ts";
import { bytesEqual, derToPem } from "../spiffe/x509.ts";

/** More certificates than any sane chain holds; bounds the walk. */
const MAX_CHAIN = 10;

/** The TLS options that carry identity: own chain, own key, trusted CAs. */
export interface TlsIdentity {
  /** Own certificate chain as PEM, leaf first. */
  readonly cert: string;
  /**
   * Own private key: a view over the material's PEM bytes, not a copy, so
   * the key never becomes a JS string and the source's zeroing reaches it.
   */
  readonly key: Buffer;
  /** Every CA of every trust bundle, as PEM. */
  readonly ca: string[];
}

/**
 * Converts X.509 material to the identity options of `node:tls`.
 *
 * @param material the current SVID and bundles
 * @returns PEM chain, key buffer and PEM CA list
 */
export function tlsIdentity(material: X509Material): TlsIdentity {
  const { keyPem } = material;
  return {
    cert: material.chain.map((der) => derToPem(der)).join(""),
    key: Buffer.from(keyPem.buffer, keyPem.byteOffset, keyPem.byteLength),
    ca: [...material.bundles.values()].flat().map((der) => derToPem(der)),
  };
}

/**
 * The peer's chain as DER, leaf first, for SVID verification. `node:tls`
 * links each certificate to its issuer, ending in a self-loop at a root; a
 * trailing certificate equal to a bundle CA is the trust anchor the TLS
 * stack appended, not something the peer presented, so it is dropped.
 * The leaf is always kept, even when it equals a bundle CA, so that the
 * leaf rules see it.
 *
 * @param cert what `getPeerCertificate(true)` returned
 * @param bundles trust domain name -> DER CA certificates
 * @returns DER certificates, leaf first; empty when the peer sent none
 */
export function peerChainDer(
  cert: PeerCertificate | DetailedPeerCertificate | undefined,
  bundles: ReadonlyMap<string, readonly Uint8Array[]>,
): Uint8Array[] {
  const chain: Uint8Array[] = [];
  let current: PeerCertificate | undefined = cert;
  while (current?.raw !== undefined && chain.length <= MAX_CHAIN) {
    const der = new Uint8Array(current.raw);
    // A self-signed root names itself as issuer: stop at the loop.
    if (chain.some((seen) => bytesEqual(seen, der))) break;
    chain.push(der);
    current = "issuerCertificate" in current
      ? (current as DetailedPeerCertificate).issuerCertificate
      : undefined;
  }
  const anchors = [...bundles.values()].flat();
  while (
    chain.length > 1 &&
    anchors.some((ca) => bytesEqual(ca, chain[chain.length - 1]!))
  ) {
    chain.pop();
  }
  return chain;
}
