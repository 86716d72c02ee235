// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A small, strict DER reader for the parts of an X.509 certificate that
 * X.509-SVID checks need, signature verification of a certificate by its
 * issuer, and PEM helpers.
 *
 * Deno's `node:crypto` `X509Certificate` reports key usage and issuer data
 * inconsistently with Node, so certificates are parsed here; only the
 * signature arithmetic is left to `node:crypto`.
 *
 * @module
 */
import { constants, createPublicKey, verify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { Buffer } from "node:buffer";

/** Raised for bytes that are not a well-formed DER certificate or PEM block. */
export class CertificateParseError extends Error {
  /** Creates the error with a message naming what is malformed. */
  constructor(message: string) {
    super(message);
    this.name = "CertificateParseError";
  }
}

/** The key usage bits SVID checks look at; `critical` tells how the extension was marked. */
export interface KeyUsage {
  /** Whether the extension is marked critical. */
  readonly critical: boolean;
  /** Bit 0. */
  readonly digitalSignature: boolean;
  /** Bit 2. */
  readonly keyEncipherment: boolean;
  /** Bit 4. */
  readonly keyAgreement: boolean;
  /** Bit 5. */
  readonly keyCertSign: boolean;
  /** Bit 6. */
  readonly cRLSign: boolean;
}

/** The basic constraints extension. */
export interface BasicConstraints {
  /** Whether the extension is marked critical. */
  readonly critical: boolean;
  /** Whether the certificate is a CA. */
  readonly cA: boolean;
  /** The path length constraint, when present. */
  readonly pathLen: number | undefined;
}

/** The parts of a certificate that SVID verification uses. */
export interface ParsedCertificate {
  /** The whole certificate DER. */
  readonly der: Uint8Array;
  /** The X.509 version: 1, 2 or 3. */
  readonly version: number;
  /** The serial number's INTEGER content bytes. */
  readonly serialNumber: Uint8Array;
  /** The DER of the TBSCertificate, the signed bytes. */
  readonly tbs: Uint8Array;
  /** The DER of the signature AlgorithmIdentifier. */
  readonly signatureAlgorithm: Uint8Array;
  /** The signature bytes (the BIT STRING content). */
  readonly signature: Uint8Array;
  /** The DER of the issuer Name, for chain building. */
  readonly issuer: Uint8Array;
  /** The DER of the subject Name, for chain building. */
  readonly subject: Uint8Array;
  /** Start of validity. */
  readonly notBefore: Date;
  /** End of validity. */
  readonly notAfter: Date;
  /** The DER of the SubjectPublicKeyInfo. */
  readonly subjectPublicKeyInfo: Uint8Array;
  /** URI SANs in order. */
  readonly uris: readonly string[];
  /** DNS SANs in order. */
  readonly dnsNames: readonly string[];
  /** Whether the SAN extension is critical; undefined when absent. */
  readonly sanCritical: boolean | undefined;
  /** Basic constraints; undefined when absent. */
  readonly basicConstraints: BasicConstraints | undefined;
  /** Key usage; undefined when absent. */
  readonly keyUsage: KeyUsage | undefined;
  /** Extended key usage OIDs; undefined when absent. */
  readonly extKeyUsage: readonly string[] | undefined;
  /** Subject key identifier; undefined when absent. */
  readonly subjectKeyId: Uint8Array | undefined;
  /** Authority key identifier (keyIdentifier field); undefined when absent. */
  readonly authorityKeyId: Uint8Array | undefined;
  /** OIDs of critical extensions this reader does not interpret. */
  readonly unhandledCriticalExtensions: readonly string[];
}

/** Extended key usage OIDs. */
export const EKU = {
  /** id-kp-serverAuth. */
  serverAuth: "1.3.6.1.5.5.7.3.1",
  /** id-kp-clientAuth. */
  clientAuth: "1.3.6.1.5.5.7.3.2",
  /** anyExtendedKeyUsage. */
  any: "2.5.29.37.0",
} as const;

const OID_SUBJECT_KEY_ID = "2.5.29.14";
const OID_KEY_USAGE = "2.5.29.15";
const OID_SAN = "2.5.29.17";
const OID_BASIC_CONSTRAINTS = "2.5.29.19";
const OID_AUTHORITY_KEY_ID = "2.5.29.35";
const OID_EXT_KEY_USAGE = "2.5.29.37";

const TAG_BOOLEAN = 0x01;
const TAG_INTEGER = 0x02;
const TAG_BIT_STRING = 0x03;
const TAG_OCTET_STRING = 0x04;
const TAG_NULL = 0x05;
const TAG_OID = 0x06;
const TAG_UTC_TIME = 0x17;
const TAG_GENERALIZED_TIME = 0x18;
const TAG_SEQUENCE = 0x30;

/** One DER element: its tag and where its value lies in the buffer. */
interface Tlv {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly start: number;
  /** Offset of the first value byte. */
  readonly valueStart: number;
  /** Offset just past the value. */
  readonly end: number;
}

function fail(message: string): never {
  throw new CertificateParseError(message);
}

/** Reads one element at `pos`, which must end no later than `limit`. */
function readTlv(bytes: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) fail("DER element is truncated");
  const tag = bytes[pos]!;
  if ((tag & 0x1f) === 0x1f) fail("DER high tag numbers are not supported");
  const first = bytes[pos + 1]!;
  let length: number;
  let valueStart: number;
  if (first < 0x80) {
    length = first;
    valueStart = pos + 2;
  } else {
    const n = first & 0x7f;
    if (n === 0) fail("DER indefinite length is not allowed");
    if (n > 4) fail("DER length is too large");
    if (pos + 2 + n > limit) fail("DER length is truncated");
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + bytes[pos + 2 + i]!;
    if (bytes[pos + 2]! === 0 || length < 0x80) {
      fail("DER length is not minimally encoded");
    }
    valueStart = pos + 2 + n;
  }
  const end = valueStart + length;
  if (end > limit) fail("DER element is truncated");
  return { tag, start: pos, valueStart, end };
}

/** Reads an element that must fill `bytes` exactly. */
function readWhole(bytes: Uint8Array, tag: number, what: string): Tlv {
  const tlv = readTlv(bytes, 0, bytes.length);
  if (tlv.tag !== tag) fail(`${what} has an unexpected DER tag`);
  if (tlv.end !== bytes.length) fail(`${what} has trailing bytes`);
  return tlv;
}

/** The elements inside a constructed element. */
function children(bytes: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let pos = parent.valueStart;
  while (pos < parent.end) {
    const tlv = readTlv(bytes, pos, parent.end);
    out.push(tlv);
    pos = tlv.end;
  }
  return out;
}

function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined) fail(`${what} is missing`);
  if (tlv.tag !== tag) fail(`${what} has an unexpected DER tag`);
  return tlv;
}

function value(bytes: Uint8Array, tlv: Tlv): Uint8Array {
  return bytes.subarray(tlv.valueStart, tlv.end);
}

function raw(bytes: Uint8Array, tlv: Tlv): Uint8Array {
  return bytes.subarray(tlv.start, tlv.end);
}

function readOid(bytes: Uint8Array, tlv: Tlv): string {
  const v = value(bytes, tlv);
  if (v.length === 0) fail("OID is empty");
  const arcs: number[] = [];
  let acc = 0;
  let fresh = true;
  for (const b of v) {
    if (fresh && b === 0x80) fail("OID arc is not minimally encoded");
    if (acc > 0x7fffff) fail("OID arc is too large");
    acc = acc * 128 + (b & 0x7f);
    fresh = (b & 0x80) === 0;
    if (fresh) {
      if (arcs.length === 0) {
        const top = acc < 40 ? 0 : acc < 80 ? 1 : 2;
        arcs.push(top, acc - top * 40);
      } else {
        arcs.push(acc);
      }
      acc = 0;
    }
  }
  if (!fresh) fail("OID is truncated");
  return arcs.join(".");
}

function readBoolean(bytes: Uint8Array, tlv: Tlv): boolean {
  const v = value(bytes, tlv);
  if (v.length !== 1 || (v[0] !== 0x00 && v[0] !== 0xff)) {
    fail("BOOLEAN is not DER encoded");
  }
  return v[0] === 0xff;
}

/** A small non-negative INTEGER (version, path length, salt length). */
function readSmallInt(bytes: Uint8Array, tlv: Tlv): number {
  const v = value(bytes, tlv);
  if (v.length === 0 || v.length > 4) fail("INTEGER has a bad length");
  if (v[0]! & 0x80) fail("INTEGER is negative");
  if (v.length > 1 && v[0] === 0 && (v[1]! & 0x80) === 0) {
    fail("INTEGER is not minimally encoded");
  }
  let n = 0;
  for (const b of v) n = n * 256 + b;
  return n;
}

/** BIT STRING content without the unused-bits byte, plus that count. */
function readBitString(
  bytes: Uint8Array,
  tlv: Tlv,
): { bits: Uint8Array; unused: number } {
  const v = value(bytes, tlv);
  if (v.length === 0) fail("BIT STRING is empty");
  const unused = v[0]!;
  if (unused > 7 || (v.length === 1 && unused !== 0)) {
    fail("BIT STRING has a bad unused-bits count");
  }
  return { bits: v.subarray(1), unused };
}

const DIGITS = /^[0-9]+$/;

function readTime(bytes: Uint8Array, tlv: Tlv): Date {
  const text = String.fromCharCode(...value(bytes, tlv));
  let year: number;
  let rest: string;
  if (tlv.tag === TAG_UTC_TIME) {
    if (text.length !== 13) fail("UTCTime is not DER encoded");
    const yy = Number(text.slice(0, 2));
    year = yy < 50 ? 2000 + yy : 1900 + yy;
    rest = text.slice(2);
  } else if (tlv.tag === TAG_GENERALIZED_TIME) {
    if (text.length !== 15) fail("GeneralizedTime is not DER encoded");
    year = Number(text.slice(0, 4));
    rest = text.slice(4);
  } else {
    fail("Validity time has an unexpected DER tag");
  }
  const digits = rest.slice(0, 10);
  if (!DIGITS.test(text.slice(0, -1)) || rest[10] !== "Z") {
    fail("Validity time is not DER encoded");
  }
  const [month, day, hour, minute, second] = [0, 2, 4, 6, 8].map((i) =>
    Number(digits.slice(i, i + 2))
  ) as [number, number, number, number, number];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const d = new Date(ms);
  if (
    d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day || hour > 23 ||
    minute > 59 || second > 59
  ) {
    fail("Validity time is not a real date");
  }
  return d;
}

function readAscii(bytes: Uint8Array, tlv: Tlv, what: string): string {
  const v = value(bytes, tlv);
  for (const b of v) if (b > 0x7e || b < 0x20) fail(`${what} is not ASCII`);
  return String.fromCharCode(...v);
}

interface Extensions {
  uris: string[];
  dnsNames: string[];
  sanCritical: boolean | undefined;
  basicConstraints: BasicConstraints | undefined;
  keyUsage: KeyUsage | undefined;
  extKeyUsage: string[] | undefined;
  subjectKeyId: Uint8Array | undefined;
  authorityKeyId: Uint8Array | undefined;
  unhandledCriticalExtensions: string[];
}

function parseSan(ext: Uint8Array, out: Extensions): void {
  const seq = readWhole(ext, TAG_SEQUENCE, "Subject alternative names");
  for (const name of children(ext, seq)) {
    // GeneralName choices are IMPLICIT context tags: [6] URI, [2] DNS.
    if (name.tag === 0x86) out.uris.push(readAscii(ext, name, "URI SAN"));
    if (name.tag === 0x82) out.dnsNames.push(readAscii(ext, name, "DNS SAN"));
  }
}

function parseBasicConstraints(
  ext: Uint8Array,
  critical: boolean,
): BasicConstraints {
  const seq = readWhole(ext, TAG_SEQUENCE, "Basic constraints");
  const items = children(ext, seq);
  let i = 0;
  let cA = false;
  let pathLen: number | undefined;
  if (items[i]?.tag === TAG_BOOLEAN) cA = readBoolean(ext, items[i++]!);
  if (items[i]?.tag === TAG_INTEGER) pathLen = readSmallInt(ext, items[i++]!);
  if (i !== items.length) fail("Basic constraints has unexpected fields");
  return { critical, cA, pathLen };
}

function parseKeyUsage(ext: Uint8Array, critical: boolean): KeyUsage {
  const { bits } = readBitString(
    ext,
    readWhole(ext, TAG_BIT_STRING, "Key usage"),
  );
  // Bit n of a DER BIT STRING is the (7 - n % 8)th bit of byte n / 8.
  const bit = (n: number) => ((bits[n >> 3] ?? 0) & (0x80 >> (n & 7))) !== 0;
  return {
    critical,
    digitalSignature: bit(0),
    keyEncipherment: bit(2),
    keyAgreement: bit(4),
    keyCertSign: bit(5),
    cRLSign: bit(6),
  };
}

function parseExtKeyUsage(ext: Uint8Array): string[] {
  const seq = readWhole(ext, TAG_SEQUENCE, "Extended key usage");
  return children(ext, seq).map((oid) =>
    readOid(ext, expectTag(oid, TAG_OID, "Extended key usage OID"))
  );
}

function parseAuthorityKeyId(ext: Uint8Array): Uint8Array | undefined {
  const seq = readWhole(ext, TAG_SEQUENCE, "Authority key identifier");
  const first = children(ext, seq)[0];
  return first?.tag === 0x80 ? value(ext, first).slice() : undefined;
}

function parseExtensions(bytes: Uint8Array, wrapper: Tlv): Extensions {
  const out: Extensions = {
    uris: [],
    dnsNames: [],
    sanCritical: undefined,
    basicConstraints: undefined,
    keyUsage: undefined,
    extKeyUsage: undefined,
    subjectKeyId: undefined,
    authorityKeyId: undefined,
    unhandledCriticalExtensions: [],
  };
  const [list, extra] = children(bytes, wrapper);
  if (extra !== undefined) fail("Extensions field has trailing elements");
  const seen = new Set<string>();
  for (
    const item of children(bytes, expectTag(list, TAG_SEQUENCE, "Extensions"))
  ) {
    const [oidTlv, second, third, more] = children(
      bytes,
      expectTag(item, TAG_SEQUENCE, "Extension"),
    );
    if (more !== undefined) fail("Extension has too many fields");
    const oid = readOid(bytes, expectTag(oidTlv, TAG_OID, "Extension OID"));
    if (seen.has(oid)) fail(`Extension ${oid} appears more than once`);
    seen.add(oid);
    let critical = false;
    let valueTlv = second;
    if (second?.tag === TAG_BOOLEAN) {
      critical = readBoolean(bytes, second);
      valueTlv = third;
    } else if (third !== undefined) {
      fail("Extension has too many fields");
    }
    const ext = value(
      bytes,
      expectTag(valueTlv, TAG_OCTET_STRING, "Extension value"),
    );
    switch (oid) {
      case OID_SAN:
        parseSan(ext, out);
        out.sanCritical = critical;
        break;
      case OID_BASIC_CONSTRAINTS:
        out.basicConstraints = parseBasicConstraints(ext, critical);
        break;
      case OID_KEY_USAGE:
        out.keyUsage = parseKeyUsage(ext, critical);
        break;
      case OID_EXT_KEY_USAGE:
        out.extKeyUsage = parseExtKeyUsage(ext);
        break;
      case OID_SUBJECT_KEY_ID:
        out.subjectKeyId = value(
          ext,
          readWhole(ext, TAG_OCTET_STRING, "Subject key identifier"),
        ).slice();
        break;
      case OID_AUTHORITY_KEY_ID:
        out.authorityKeyId = parseAuthorityKeyId(ext);
        break;
      default:
        if (critical) out.unhandledCriticalExtensions.push(oid);
    }
  }
  return out;
}

/**
 * Parses a DER certificate strictly (definite minimal lengths, no trailing
 * bytes, matching inner and outer signature algorithms, no duplicate
 * extensions).
 *
 * @param der the certificate DER; the result keeps a copy
 * @returns the parsed certificate
 * @throws {CertificateParseError} when the bytes are not a well-formed certificate
 */
export function parseCertificate(der: Uint8Array): ParsedCertificate {
  const bytes = der.slice();
  const cert = readWhole(bytes, TAG_SEQUENCE, "Certificate");
  const [tbsTlv, sigAlgTlv, sigTlv, extra] = children(bytes, cert);
  if (extra !== undefined) fail("Certificate has trailing elements");
  expectTag(tbsTlv, TAG_SEQUENCE, "TBSCertificate");
  expectTag(sigAlgTlv, TAG_SEQUENCE, "Signature algorithm");
  const { bits: signature, unused } = readBitString(
    bytes,
    expectTag(sigTlv, TAG_BIT_STRING, "Signature"),
  );
  if (unused !== 0) fail("Signature has unused bits");

  const fields = children(bytes, tbsTlv!);
  let i = 0;
  let version = 1;
  if (fields[i]?.tag === 0xa0) {
    const inner = children(bytes, fields[i++]!);
    if (inner.length !== 1) fail("Version field is malformed");
    version = readSmallInt(
      bytes,
      expectTag(inner[0], TAG_INTEGER, "Version"),
    ) + 1;
    if (version > 3) fail("Certificate version is not 1, 2 or 3");
  }
  const serial = expectTag(fields[i++], TAG_INTEGER, "Serial number");
  const innerAlg = expectTag(fields[i++], TAG_SEQUENCE, "Inner algorithm");
  const signatureAlgorithm = raw(bytes, sigAlgTlv!);
  if (!bytesEqual(raw(bytes, innerAlg), signatureAlgorithm)) {
    fail("Inner and outer signature algorithms differ");
  }
  const issuer = expectTag(fields[i++], TAG_SEQUENCE, "Issuer");
  const validity = expectTag(fields[i++], TAG_SEQUENCE, "Validity");
  const subject = expectTag(fields[i++], TAG_SEQUENCE, "Subject");
  const spki = expectTag(fields[i++], TAG_SEQUENCE, "Subject public key");
  const times = children(bytes, validity);
  if (times.length !== 2) fail("Validity is malformed");
  const notBefore = readTime(bytes, times[0]!);
  const notAfter = readTime(bytes, times[1]!);
  // issuerUniqueID [1] and subjectUniqueID [2] are allowed but unused.
  if (fields[i]?.tag === 0x81) i++;
  if (fields[i]?.tag === 0x82) i++;
  let ext: Extensions | undefined;
  if (fields[i]?.tag === 0xa3) {
    if (version !== 3) fail("Extensions require a version 3 certificate");
    ext = parseExtensions(bytes, fields[i++]!);
  }
  if (i !== fields.length) fail("TBSCertificate has unexpected fields");
  return {
    der: bytes,
    version,
    serialNumber: value(bytes, serial),
    tbs: raw(bytes, tbsTlv!),
    signatureAlgorithm,
    signature,
    issuer: raw(bytes, issuer),
    subject: raw(bytes, subject),
    notBefore,
    notAfter,
    subjectPublicKeyInfo: raw(bytes, spki),
    uris: ext?.uris ?? [],
    dnsNames: ext?.dnsNames ?? [],
    sanCritical: ext?.sanCritical,
    basicConstraints: ext?.basicConstraints,
    keyUsage: ext?.keyUsage,
    extKeyUsage: ext?.extKeyUsage,
    subjectKeyId: ext?.subjectKeyId,
    authorityKeyId: ext?.authorityKeyId,
    unhandledCriticalExtensions: ext?.unhandledCriticalExtensions ?? [],
  };
}

/**
 * Whether two byte arrays are equal. Not constant time: for public data.
 *
 * @param a first array
 * @param b second array
 * @returns true when lengths and bytes match
 */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** How to check a signature: hash for `node:crypto`, key type, PSS salt. */
interface SignatureScheme {
  readonly hash: string | null;
  readonly keyTypes: readonly string[];
  readonly pssSaltLength?: number;
}

const HASH_OIDS: Record<string, [string, number]> = {
  "2.16.840.1.101.3.4.2.1": ["sha256", 32],
  "2.16.840.1.101.3.4.2.2": ["sha384", 48],
  "2.16.840.1.101.3.4.2.3": ["sha512", 64],
};

const SIMPLE_SCHEMES: Record<string, SignatureScheme> = {
  "1.2.840.10045.4.3.2": { hash: "sha256", keyTypes: ["ec"] },
  "1.2.840.10045.4.3.3": { hash: "sha384", keyTypes: ["ec"] },
  "1.2.840.10045.4.3.4": { hash: "sha512", keyTypes: ["ec"] },
  "1.2.840.113549.1.1.11": { hash: "sha256", keyTypes: ["rsa"] },
  "1.2.840.113549.1.1.12": { hash: "sha384", keyTypes: ["rsa"] },
  "1.2.840.113549.1.1.13": { hash: "sha512", keyTypes: ["rsa"] },
  "1.3.101.112": { hash: null, keyTypes: ["ed25519"] },
};
const OID_RSA_PSS = "1.2.840.113549.1.1.10";
const OID_MGF1 = "1.2.840.113549.1.1.8";

/** An AlgorithmIdentifier's hash OID, allowing an absent or NULL parameter. */
function hashOfAlgorithm(bytes: Uint8Array, tlv: Tlv): string {
  const [oid, params, extra] = children(bytes, tlv);
  if (extra !== undefined || (params && params.tag !== TAG_NULL)) {
    fail("Hash algorithm is malformed");
  }
  return readOid(bytes, expectTag(oid, TAG_OID, "Hash algorithm OID"));
}

/**
 * RSASSA-PSS is accepted as Go accepts it: SHA-256/384/512, MGF1 with the
 * same hash, salt as long as the hash, trailer 1.
 */
function pssScheme(
  bytes: Uint8Array,
  params: Tlv | undefined,
): SignatureScheme {
  const fields = children(
    bytes,
    expectTag(params, TAG_SEQUENCE, "PSS parameters"),
  );
  const hashField = fields.find((f) => f.tag === 0xa0);
  const mgfField = fields.find((f) => f.tag === 0xa1);
  const saltField = fields.find((f) => f.tag === 0xa2);
  const trailerField = fields.find((f) => f.tag === 0xa3);
  if (!hashField || !mgfField || !saltField) {
    fail("PSS parameters with default SHA-1 are not supported");
  }
  const hashOid = hashOfAlgorithm(
    bytes,
    expectTag(children(bytes, hashField)[0], TAG_SEQUENCE, "PSS hash"),
  );
  const hash = HASH_OIDS[hashOid];
  if (!hash) fail("PSS hash is not supported");
  const [mgfOid, mgfHash] = children(
    bytes,
    expectTag(children(bytes, mgfField)[0], TAG_SEQUENCE, "PSS mask"),
  );
  if (
    readOid(bytes, expectTag(mgfOid, TAG_OID, "PSS mask OID")) !== OID_MGF1 ||
    hashOfAlgorithm(bytes, expectTag(mgfHash, TAG_SEQUENCE, "MGF1 hash")) !==
      hashOid
  ) {
    fail("PSS mask must be MGF1 with the signature hash");
  }
  const salt = readSmallInt(
    bytes,
    expectTag(children(bytes, saltField)[0], TAG_INTEGER, "PSS salt"),
  );
  if (salt !== hash[1]) fail("PSS salt length must equal the hash length");
  if (
    trailerField &&
    readSmallInt(
        bytes,
        expectTag(children(bytes, trailerField)[0], TAG_INTEGER, "PSS trailer"),
      ) !== 1
  ) {
    fail("PSS trailer field must be 1");
  }
  return { hash: hash[0], keyTypes: ["rsa", "rsa-pss"], pssSaltLength: salt };
}

function signatureScheme(algorithm: Uint8Array): SignatureScheme {
  const seq = readWhole(algorithm, TAG_SEQUENCE, "Signature algorithm");
  const [oidTlv, params] = children(algorithm, seq);
  const oid = readOid(
    algorithm,
    expectTag(oidTlv, TAG_OID, "Signature algorithm OID"),
  );
  if (oid === OID_RSA_PSS) return pssScheme(algorithm, params);
  const scheme = SIMPLE_SCHEMES[oid];
  if (!scheme) fail(`Signature algorithm ${oid} is not supported`);
  return scheme;
}

/**
 * Whether `child`'s signature verifies with `parent`'s public key, and the
 * parent's subject names the child's issuer. Supports ECDSA (P-256, P-384,
 * P-521), RSA PKCS#1 v1.5 and PSS with SHA-256/384/512, and Ed25519; SHA-1
 * and other algorithms never verify. CA flags and validity are the caller's
 * checks.
 *
 * @param child the certificate whose signature to check
 * @param parent the presumed issuer
 * @returns true only when the names match and the signature is valid
 */
export function verifySignedBy(
  child: ParsedCertificate,
  parent: ParsedCertificate,
): boolean {
  if (!bytesEqual(child.issuer, parent.subject)) return false;
  let scheme: SignatureScheme;
  let key: KeyObject;
  try {
    scheme = signatureScheme(child.signatureAlgorithm);
    key = createPublicKey({
      key: Buffer.from(parent.subjectPublicKeyInfo),
      format: "der",
      type: "spki",
    });
  } catch {
    return false;
  }
  if (!scheme.keyTypes.includes(key.asymmetricKeyType ?? "")) return false;
  try {
    return verify(
      scheme.hash,
      child.tbs,
      scheme.pssSaltLength === undefined ? key : {
        key,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: scheme.pssSaltLength,
      },
      child.signature,
    );
  } catch {
    return false;
  }
}

/**
 * Whether `now` lies within the certificate's validity window, bounds
 * included.
 *
 * @param cert the certificate
 * @param now the time to check
 * @returns true when valid at `now`
 */
export function isValidAt(cert: ParsedCertificate, now: Date): boolean {
  const t = now.getTime();
  return t >= cert.notBefore.getTime() && t <= cert.notAfter.getTime();
}

/** One PEM block. */
export interface PemBlock {
  /** The label, e.g. `CERTIFICATE`, `PRIVATE KEY`. */
  readonly label: string;
  /** The decoded bytes. */
  readonly der: Uint8Array;
}

const DASHES = "-----";

/** Index of ASCII `needle` in `hay` at or after `from`, or -1. */
function indexOfAscii(hay: Uint8Array, needle: string, from: number): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (hay[i + j] !== needle.charCodeAt(j)) continue outer;
    }
    return i;
  }
  return -1;
}

function base64Value(c: number): number {
  if (c >= 0x41 && c <= 0x5a) return c - 0x41;
  if (c >= 0x61 && c <= 0x7a) return c - 0x61 + 26;
  if (c >= 0x30 && c <= 0x39) return c - 0x30 + 52;
  if (c === 0x2b) return 62;
  if (c === 0x2f) return 63;
  return -1;
}

/**
 * Decodes base64 from bytes without building a JS string, so key material
 * stays in buffers that can be zeroed.
 */
function decodeBase64Bytes(text: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.floor(text.length * 3 / 4) + 3);
  let n = 0;
  let acc = 0;
  let bits = 0;
  let padding = 0;
  for (const c of text) {
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
    if (c === 0x3d) {
      padding++;
      continue;
    }
    const v = base64Value(c);
    if (v < 0 || padding > 0) {
      acc = 0;
      out.fill(0);
      fail("PEM block has invalid base64");
    }
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  acc = 0;
  if (padding > 2 || bits >= 6) {
    out.fill(0);
    fail("PEM block has invalid base64");
  }
  const result = out.slice(0, n);
  out.fill(0);
  return result;
}

/**
 * Decodes every PEM block in `input`. Works on bytes so private keys never
 * become JS strings; the caller zeroes returned key bytes.
 *
 * @param input PEM text or bytes
 * @returns the blocks in order
 * @throws {CertificateParseError} for an unterminated block or bad base64
 */
export function decodePem(input: string | Uint8Array): PemBlock[] {
  const bytes = typeof input === "string"
    ? new TextEncoder().encode(input)
    : input;
  const blocks: PemBlock[] = [];
  try {
    decodeBlocks(bytes, blocks);
  } catch (e) {
    // Blocks decoded before the bad one may be keys: clear them.
    for (const b of blocks) b.der.fill(0);
    throw e;
  }
  return blocks;
}

function decodeBlocks(bytes: Uint8Array, blocks: PemBlock[]): void {
  let pos = 0;
  while (true) {
    const begin = indexOfAscii(bytes, `${DASHES}BEGIN `, pos);
    if (begin === -1) break;
    const labelStart = begin + DASHES.length + 6;
    const labelEnd = indexOfAscii(bytes, DASHES, labelStart);
    if (labelEnd === -1) fail("PEM header is not terminated");
    const label = String.fromCharCode(...bytes.subarray(labelStart, labelEnd));
    const bodyStart = labelEnd + DASHES.length;
    const footer = `${DASHES}END ${label}${DASHES}`;
    const end = indexOfAscii(bytes, footer, bodyStart);
    if (end === -1) fail(`PEM block ${label} has no END line`);
    blocks.push({
      label,
      der: decodeBase64Bytes(bytes.subarray(bodyStart, end)),
    });
    pos = end + footer.length;
  }
}

/**
 * The DER of every CERTIFICATE block in PEM text; other blocks are skipped.
 *
 * @param text PEM text or bytes
 * @returns the certificates in order
 * @throws {CertificateParseError} for a malformed block
 */
export function pemToDerList(text: string | Uint8Array): Uint8Array[] {
  return decodePem(text)
    .filter((b) => b.label === "CERTIFICATE")
    .map((b) => b.der);
}

/**
 * Encodes DER as a PEM block with 64-character lines. Builds strings: for
 * certificates and other public data, never keys.
 *
 * @param der the bytes
 * @param label the block label; default `CERTIFICATE`
 * @returns the PEM text, ending with a newline
 */
export function derToPem(der: Uint8Array, label = "CERTIFICATE"): string {
  let binary = "";
  for (const b of der) binary += String.fromCharCode(b);
  const lines = btoa(binary).match(/.{1,64}/g) ?? [];
  return `${DASHES}BEGIN ${label}${DASHES}\n${
    lines.join("\n")
  }\n${DASHES}END ${label}${DASHES}\n`;
}
