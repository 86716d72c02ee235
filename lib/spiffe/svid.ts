// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * X.509-SVID verification as the X509-SVID standard and go-spiffe's
 * `x509svid.Verify` / `ParseX509SVID` define it: one URI SAN holding a SPIFFE
 * ID with a non-root path, a leaf that is no CA and signs only, and RFC 5280
 * path validation against the bundle of the leaf's own trust domain.
 *
 * The TLS stack's chain check is not enough on its own: Deno accepts a CA
 * certificate as an end entity, so every leaf rule is checked here.
 *
 * @module
 */
import { createPrivateKey, createPublicKey } from "node:crypto";
import { Buffer } from "node:buffer";
import { parseSpiffeId, type SpiffeId, SpiffeIdError } from "./id.ts";
import {
  bytesEqual,
  CertificateParseError,
  decodePem,
  isValidAt,
  parseCertificate,
  type ParsedCertificate,
  verifySignedBy,
} from "./x509.ts";
import { zero } from "../crypto/zero.ts";

/** Raised when an X.509-SVID is rejected; the message names the broken rule. */
export class SvidError extends Error {
  /** Creates the error with a message naming the broken rule. */
  constructor(message: string) {
    super(message);
    this.name = "SvidError";
  }
}

/** Longest chain of intermediates followed while building a path. */
const MAX_INTERMEDIATES = 8;
const EMPTY_NAME = new Uint8Array([0x30, 0x00]);

function parse(der: Uint8Array, what: string): ParsedCertificate {
  try {
    return parseCertificate(der);
  } catch (e) {
    if (e instanceof CertificateParseError) {
      throw new SvidError(`${what} is malformed: ${e.message}`);
    }
    throw e;
  }
}

function checkCriticalExtensions(cert: ParsedCertificate, what: string): void {
  const oid = cert.unhandledCriticalExtensions[0];
  if (oid !== undefined) {
    throw new SvidError(`${what} has an unsupported critical extension ${oid}`);
  }
}

function checkValidity(cert: ParsedCertificate, now: Date, what: string): void {
  if (now.getTime() < cert.notBefore.getTime()) {
    throw new SvidError(`${what} is not yet valid`);
  }
  if (now.getTime() > cert.notAfter.getTime()) {
    throw new SvidError(`${what} has expired`);
  }
}

/** The leaf rules; returns the SPIFFE ID in the leaf. */
function checkLeaf(leaf: ParsedCertificate): SpiffeId {
  if (leaf.uris.length === 0) {
    throw new SvidError("Leaf certificate has no URI SAN");
  }
  if (leaf.uris.length > 1) {
    throw new SvidError("Leaf certificate has more than one URI SAN");
  }
  let id: SpiffeId;
  try {
    id = parseSpiffeId(leaf.uris[0]!);
  } catch (e) {
    if (e instanceof SpiffeIdError) {
      throw new SvidError(
        `Leaf certificate URI SAN is not a valid SPIFFE ID: ${e.message}`,
      );
    }
    throw e;
  }
  if (leaf.basicConstraints?.cA) {
    throw new SvidError("Leaf certificate must not be a CA");
  }
  const ku = leaf.keyUsage;
  if (ku === undefined) {
    throw new SvidError("Leaf certificate has no key usage extension");
  }
  if (ku.keyCertSign) {
    throw new SvidError(
      "Leaf certificate must not have the keyCertSign key usage",
    );
  }
  if (ku.cRLSign) {
    throw new SvidError("Leaf certificate must not have the cRLSign key usage");
  }
  if (!ku.digitalSignature) {
    throw new SvidError(
      "Leaf certificate must have the digitalSignature key usage",
    );
  }
  if (!ku.critical) {
    throw new SvidError(
      "Leaf certificate key usage extension must be critical",
    );
  }
  if (id.path === "") {
    throw new SvidError("Leaf SPIFFE ID must have a non-root path");
  }
  if (bytesEqual(leaf.subject, EMPTY_NAME) && !leaf.sanCritical) {
    throw new SvidError(
      "Leaf certificate with an empty subject must have a critical SAN extension",
    );
  }
  checkCriticalExtensions(leaf, "Leaf certificate");
  return id;
}

function checkIntermediate(
  cert: ParsedCertificate,
  index: number,
  now: Date,
): void {
  const what = `Intermediate certificate ${index}`;
  if (!cert.basicConstraints?.cA) throw new SvidError(`${what} is not a CA`);
  if (!cert.keyUsage?.keyCertSign) {
    throw new SvidError(`${what} lacks the keyCertSign key usage`);
  }
  checkCriticalExtensions(cert, what);
  checkValidity(cert, now, what);
}

/** Why a trust-bundle CA cannot anchor a path, or undefined when it can. */
function rootProblem(root: ParsedCertificate, now: Date): string | undefined {
  if (!root.basicConstraints?.cA) {
    return "the issuing bundle certificate is not a CA";
  }
  if (root.keyUsage !== undefined && !root.keyUsage.keyCertSign) {
    return "the issuing bundle CA lacks the keyCertSign key usage";
  }
  if (root.unhandledCriticalExtensions.length > 0) {
    return "the issuing bundle CA has an unsupported critical extension";
  }
  if (!isValidAt(root, now)) return "the issuing bundle CA is not valid now";
  return undefined;
}

/** Whether `parent` allows `below` intermediates under it. */
function pathLenAllows(parent: ParsedCertificate, below: number): boolean {
  const limit = parent.basicConstraints?.pathLen;
  return limit === undefined || below <= limit;
}

/**
 * Searches a path from `cert` (at `position`, leaf = 0) through unused
 * presented intermediates to a bundle CA. Records why a signing CA could not
 * be used, for the error message.
 */
function chainsToRoot(
  cert: ParsedCertificate,
  position: number,
  intermediates: readonly ParsedCertificate[],
  used: Set<number>,
  roots: readonly ParsedCertificate[],
  now: Date,
  reasons: string[],
): boolean {
  for (const root of roots) {
    if (!verifySignedBy(cert, root)) continue;
    const problem = rootProblem(root, now) ??
      (pathLenAllows(root, position)
        ? undefined
        : "the path length constraint of the bundle CA is exceeded");
    if (problem === undefined) return true;
    reasons.push(problem);
  }
  if (position > MAX_INTERMEDIATES) return false;
  for (const [i, parent] of intermediates.entries()) {
    if (used.has(i) || !verifySignedBy(cert, parent)) continue;
    if (!pathLenAllows(parent, position)) {
      reasons.push("the path length constraint of an intermediate is exceeded");
      continue;
    }
    used.add(i);
    if (
      chainsToRoot(
        parent,
        position + 1,
        intermediates,
        used,
        roots,
        now,
        reasons,
      )
    ) {
      return true;
    }
    used.delete(i);
  }
  return false;
}

/**
 * Verifies an X.509-SVID chain and returns its SPIFFE ID.
 *
 * @param chain DER certificates, leaf first, then intermediates
 * @param bundles trust domain name -> DER CA certificates of that domain;
 *   the leaf must chain to the bundle of its own trust domain
 * @param now the time to check validity at; default now
 * @returns the SPIFFE ID of the leaf
 * @throws {SvidError} naming the first broken rule
 */
export function verifyX509Svid(
  chain: readonly Uint8Array[],
  bundles: ReadonlyMap<string, readonly Uint8Array[]>,
  now: Date = new Date(),
): SpiffeId {
  const [leafDer, ...rest] = chain;
  if (leafDer === undefined) throw new SvidError("Certificate chain is empty");
  const leaf = parse(leafDer, "Leaf certificate");
  const id = checkLeaf(leaf);
  const intermediates = rest.map((der, i) => {
    const cert = parse(der, `Intermediate certificate ${i + 1}`);
    checkIntermediate(cert, i + 1, now);
    return cert;
  });
  checkValidity(leaf, now, "Leaf certificate");

  const bundle = bundles.get(id.trustDomain);
  if (bundle === undefined) {
    throw new SvidError(`No trust bundle for trust domain "${id.trustDomain}"`);
  }
  if (bundle.length === 0) {
    throw new SvidError(
      `Trust bundle for trust domain "${id.trustDomain}" is empty`,
    );
  }
  // A malformed bundle entry cannot anchor anything; the others still can.
  const roots = bundle.flatMap((der) => {
    try {
      return [parseCertificate(der)];
    } catch {
      return [];
    }
  });
  const reasons: string[] = [];
  if (!chainsToRoot(leaf, 0, intermediates, new Set(), roots, now, reasons)) {
    throw new SvidError(
      `Certificate chain does not verify against the trust bundle of "${id.trustDomain}": ${
        reasons[0] ?? "no CA of the bundle signed it"
      }`,
    );
  }
  return id;
}

/**
 * Whether a certificate chain has a path to `caDer` as its trust anchor,
 * through its own intermediates or other given CAs, by signatures and CA
 * rules only (no leaf rules). Used to tell whether a CA without a SPIFFE ID
 * is the root that issued this process's own SVID.
 *
 * @param chain DER certificates, leaf first, then intermediates
 * @param caDer the candidate anchor
 * @param others more CA certificates a path may pass through (the rest of
 *   a bundle file, where tools may put the intermediates)
 * @param now the time to check validity at; default now
 * @returns true when the chain leads to the CA; false for anything
 *   unparsable
 */
export function chainsToCa(
  chain: readonly Uint8Array[],
  caDer: Uint8Array,
  others: readonly Uint8Array[] = [],
  now: Date = new Date(),
): boolean {
  try {
    const [leaf, ...rest] = chain.map((der) => parseCertificate(der));
    if (leaf === undefined) return false;
    const cas = others.flatMap((der) => {
      try {
        const cert = parseCertificate(der);
        return cert.basicConstraints?.cA ? [cert] : [];
      } catch {
        return [];
      }
    });
    return chainsToRoot(
      leaf,
      0,
      [...rest, ...cas],
      new Set(),
      [parseCertificate(caDer)],
      now,
      [],
    );
  } catch (e) {
    if (e instanceof CertificateParseError) return false;
    throw e;
  }
}

/**
 * Verifies this process's own X.509-SVID: every rule of
 * {@linkcode verifyX509Svid}, plus that the private key is a PKCS#8 key
 * matching the leaf's public key (as go-spiffe's `ParseX509SVID`).
 *
 * @param chain DER certificates, leaf first
 * @param keyPem the PKCS#8 private key as PEM bytes; not modified
 * @param bundles trust domain name -> DER CA certificates
 * @param now the time to check validity at; default now
 * @returns the SPIFFE ID of the leaf
 * @throws {SvidError} naming the first broken rule; never key material
 */
export function verifyOwnSvid(
  chain: readonly Uint8Array[],
  keyPem: Uint8Array,
  bundles: ReadonlyMap<string, readonly Uint8Array[]>,
  now: Date = new Date(),
): SpiffeId {
  const id = verifyX509Svid(chain, bundles, now);
  let blocks;
  try {
    blocks = decodePem(keyPem);
  } catch {
    throw new SvidError("Private key PEM is malformed");
  }
  try {
    const keys = blocks.filter((b) => b.label === "PRIVATE KEY");
    if (keys.length === 0) {
      throw new SvidError("Private key PEM holds no PKCS#8 PRIVATE KEY block");
    }
    if (keys.length > 1) {
      throw new SvidError("Private key PEM holds more than one private key");
    }
    const der = keys[0]!.der;
    let spki: Uint8Array;
    try {
      const key = createPrivateKey({
        // A view, not a copy, so zeroing `der` below clears the only copy.
        key: Buffer.from(der.buffer, der.byteOffset, der.byteLength),
        format: "der",
        type: "pkcs8",
      });
      spki = new Uint8Array(
        createPublicKey(key).export({ type: "spki", format: "der" }),
      );
    } catch {
      throw new SvidError("Private key cannot be parsed as PKCS#8");
    }
    if (!bytesEqual(spki, parseCertificate(chain[0]!).subjectPublicKeyInfo)) {
      throw new SvidError("Private key does not match the leaf certificate");
    }
  } finally {
    zero(...blocks.map((b) => b.der));
  }
  return id;
}
