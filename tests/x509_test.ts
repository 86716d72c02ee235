// Copyright 2026 the SPIKE for Deno authors. MIT license.
import "reflect-metadata";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { createDevCa, issueSvid } from "../scripts/dev_ca.ts";
import {
  CertificateParseError,
  decodePem,
  derToPem,
  EKU,
  parseCertificate,
  pemToDerList,
  verifySignedBy,
} from "../lib/spiffe/x509.ts";

x509.cryptoProvider.set(crypto);

const ca = await createDevCa("a.org");
const caDer = new Uint8Array(ca.cert.rawData);
const svid = await issueSvid(ca, "spiffe://a.org/spike/nexus");

/** A self-signed CA and a leaf it signed, with the given algorithm. */
async function pair(
  alg: RsaHashedKeyGenParams | EcKeyGenParams | Algorithm,
  signing: Algorithm = alg,
) {
  const keys = await crypto.subtle.generateKey(alg, false, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: "CN=root",
    keys,
    signingAlgorithm: signing,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const leafKeys = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  const leaf = await x509.X509CertificateGenerator.create({
    subject: "CN=leaf",
    issuer: root.subject,
    publicKey: leafKeys.publicKey,
    signingKey: keys.privateKey,
    signingAlgorithm: signing,
  });
  return {
    root: parseCertificate(new Uint8Array(root.rawData)),
    leaf: parseCertificate(new Uint8Array(leaf.rawData)),
  };
}

Deno.test("parseCertificate reads the SVID fields", () => {
  const leaf = parseCertificate(svid.certDer);
  assert.equal(leaf.version, 3);
  assert.deepEqual(leaf.uris, ["spiffe://a.org/spike/nexus"]);
  assert.equal(leaf.sanCritical, true);
  assert.deepEqual(leaf.basicConstraints, {
    critical: true,
    cA: false,
    pathLen: undefined,
  });
  assert.equal(leaf.keyUsage?.critical, true);
  assert.equal(leaf.keyUsage?.digitalSignature, true);
  assert.equal(leaf.keyUsage?.keyEncipherment, true);
  assert.equal(leaf.keyUsage?.keyCertSign, false);
  assert.equal(leaf.keyUsage?.cRLSign, false);
  assert.deepEqual(leaf.extKeyUsage, [EKU.serverAuth, EKU.clientAuth]);
  assert.ok(leaf.notBefore < new Date() && new Date() < leaf.notAfter);
  assert.deepEqual(leaf.unhandledCriticalExtensions, []);

  const root = parseCertificate(caDer);
  assert.equal(root.basicConstraints?.cA, true);
  assert.equal(root.keyUsage?.keyCertSign, true);
  assert.equal(root.keyUsage?.cRLSign, true);
  assert.deepEqual(leaf.issuer, root.subject);
  assert.deepEqual(leaf.authorityKeyId, root.subjectKeyId);
});

Deno.test("parseCertificate agrees with node:crypto on validity and names", async () => {
  const { X509Certificate } = await import("node:crypto");
  const leaf = parseCertificate(svid.certDer);
  const node = new X509Certificate(svid.certDer);
  assert.equal(leaf.notBefore.getTime(), new Date(node.validFrom).getTime());
  assert.equal(leaf.notAfter.getTime(), new Date(node.validTo).getTime());
  assert.ok(node.checkIssued(new X509Certificate(caDer)));
});

Deno.test("parseCertificate rejects trailing bytes", () => {
  const bad = new Uint8Array([...svid.certDer, 0]);
  assert.throws(() => parseCertificate(bad), /trailing bytes/);
});

Deno.test("parseCertificate rejects a truncated certificate", () => {
  assert.throws(
    () => parseCertificate(svid.certDer.subarray(0, svid.certDer.length - 1)),
    CertificateParseError,
  );
});

Deno.test("parseCertificate rejects indefinite and non-minimal lengths", () => {
  assert.throws(
    () => parseCertificate(new Uint8Array([0x30, 0x80, 0x00, 0x00])),
    /indefinite length/,
  );
  assert.throws(
    () => parseCertificate(new Uint8Array([0x30, 0x81, 0x01, 0x00])),
    /not minimally encoded/,
  );
});

Deno.test("parseCertificate reports unknown critical extensions", async () => {
  const keys = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: "CN=x",
    keys,
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    extensions: [
      new x509.Extension("1.2.3.4", true, new Uint8Array([0x05, 0x00])),
    ],
  });
  assert.deepEqual(
    parseCertificate(new Uint8Array(cert.rawData)).unhandledCriticalExtensions,
    ["1.2.3.4"],
  );
});

Deno.test("verifySignedBy accepts the issuer and rejects others", async () => {
  const leaf = parseCertificate(svid.certDer);
  const root = parseCertificate(caDer);
  assert.equal(verifySignedBy(leaf, root), true);
  assert.equal(verifySignedBy(root, root), true);
  assert.equal(verifySignedBy(leaf, leaf), false);
  const impostor = await createDevCa("a.org");
  assert.equal(
    verifySignedBy(
      leaf,
      parseCertificate(new Uint8Array(impostor.cert.rawData)),
    ),
    false,
  );
});

Deno.test("verifySignedBy rejects a tampered certificate", () => {
  const leaf = parseCertificate(svid.certDer);
  // Change one serial number byte: the certificate still parses, but the
  // signed bytes differ.
  const at = leaf.serialNumber.byteOffset - leaf.der.byteOffset + 3;
  const der = svid.certDer.slice();
  der[at] = der[at]! ^ 0x01;
  assert.equal(
    verifySignedBy(parseCertificate(der), parseCertificate(caDer)),
    false,
  );
});

Deno.test("verifySignedBy supports ECDSA P-384", async () => {
  const { root, leaf } = await pair(
    { name: "ECDSA", namedCurve: "P-384" },
    { name: "ECDSA", namedCurve: "P-384", hash: "SHA-384" } as Algorithm,
  );
  assert.equal(verifySignedBy(leaf, root), true);
});

Deno.test("verifySignedBy supports RSA PKCS#1 v1.5", async () => {
  const { root, leaf } = await pair({
    name: "RSASSA-PKCS1-v1_5",
    modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash: "SHA-256",
  } as RsaHashedKeyGenParams);
  assert.equal(verifySignedBy(leaf, root), true);
  assert.equal(verifySignedBy(root, root), true);
});

Deno.test("verifySignedBy supports RSA-PSS", async () => {
  const { root, leaf } = await pair(
    {
      name: "RSA-PSS",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    } as RsaHashedKeyGenParams,
    { name: "RSA-PSS", hash: "SHA-256", saltLength: 32 } as Algorithm,
  );
  const pssOid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
  assert.deepEqual([...leaf.signatureAlgorithm.subarray(4, 13)], pssOid);
  assert.equal(verifySignedBy(leaf, root), true);
});

Deno.test("verifySignedBy supports Ed25519", async () => {
  const { root, leaf } = await pair({ name: "Ed25519" });
  assert.equal(verifySignedBy(leaf, root), true);
});

Deno.test("pemToDerList reads certificates and skips other blocks", () => {
  const text = `junk\n${derToPem(svid.certDer)}${svid.keyPem}\n${
    derToPem(caDer)
  }`;
  const ders = pemToDerList(text);
  assert.equal(ders.length, 2);
  assert.deepEqual(ders[0], svid.certDer);
  assert.deepEqual(ders[1], caDer);
  assert.deepEqual(pemToDerList(new TextEncoder().encode(text)), ders);
  assert.deepEqual(pemToDerList(""), []);
});

Deno.test("derToPem writes 64-character lines that round-trip", () => {
  const pem = derToPem(svid.certDer);
  const lines = pem.trim().split("\n");
  assert.equal(lines[0], "-----BEGIN CERTIFICATE-----");
  assert.equal(lines.at(-1), "-----END CERTIFICATE-----");
  assert.ok(lines.slice(1, -2).every((l) => l.length === 64));
  assert.deepEqual(decodePem(pem), [{
    label: "CERTIFICATE",
    der: svid.certDer,
  }]);
});

Deno.test("decodePem rejects bad base64 and unterminated blocks", () => {
  assert.throws(
    () =>
      decodePem("-----BEGIN CERTIFICATE-----\nAB$D\n-----END CERTIFICATE-----"),
    /invalid base64/,
  );
  assert.throws(
    () => decodePem("-----BEGIN CERTIFICATE-----\nABCD\n"),
    /no END line/,
  );
  assert.throws(
    () =>
      decodePem("-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----"),
    /invalid base64/,
  );
});
