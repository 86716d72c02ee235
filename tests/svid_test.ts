// Copyright 2026 the SPIKE for Deno authors. MIT license.
import "reflect-metadata";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import {
  createDevCa,
  type DevCa,
  issueIntermediateCa,
  type IssueOptions,
  issueSvid,
} from "../scripts/dev_ca.ts";
import {
  SvidError,
  verifyOwnSvid,
  verifyX509Svid,
} from "../lib/spiffe/svid.ts";

const HOUR = 3_600_000;
const caA = await createDevCa("a.org");
const caB = await createDevCa("b.org");
/** Same trust domain name and subject as caA, different key. */
const impostor = await createDevCa("a.org");

const der = (ca: DevCa) => new Uint8Array(ca.cert.rawData);
const bundlesA = new Map([["a.org", [der(caA)]]]);
const bundlesAB = new Map([["a.org", [der(caA)]], ["b.org", [der(caB)]]]);

async function leaf(
  ca: DevCa,
  id = `spiffe://${ca.trustDomain}/spike/nexus`,
  options: IssueOptions = {},
): Promise<Uint8Array> {
  return (await issueSvid(ca, id, options)).certDer;
}

function rejects(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SvidError, `not an SvidError: ${e}`);
    assert.equal(e.name, "SvidError");
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("verifyX509Svid accepts a leaf signed by the trust domain CA", async () => {
  const id = verifyX509Svid([await leaf(caA)], bundlesA);
  assert.deepEqual(id, {
    trustDomain: "a.org",
    path: "/spike/nexus",
    uri: "spiffe://a.org/spike/nexus",
  });
});

Deno.test("verifyX509Svid accepts a chain through an intermediate CA", async () => {
  const inter = await issueIntermediateCa(caA);
  const cert = await leaf(inter, "spiffe://a.org/workload");
  assert.equal(
    verifyX509Svid([cert, der(inter)], bundlesA).uri,
    "spiffe://a.org/workload",
  );
});

Deno.test("verifyX509Svid accepts a chain through two intermediates", async () => {
  const i1 = await issueIntermediateCa(caA, { pathLength: 1 });
  const i2 = await issueIntermediateCa(i1);
  const cert = await leaf(i2);
  // Presented out of order: the path is built by names and signatures.
  verifyX509Svid([cert, der(i1), der(i2)], bundlesA);
});

Deno.test("verifyX509Svid uses the bundle of each leaf's own trust domain", async () => {
  assert.equal(
    verifyX509Svid([await leaf(caA)], bundlesAB).trustDomain,
    "a.org",
  );
  assert.equal(
    verifyX509Svid([await leaf(caB)], bundlesAB).trustDomain,
    "b.org",
  );
});

Deno.test("verifyX509Svid rejects an empty chain", () => {
  rejects(() => verifyX509Svid([], bundlesA), /chain is empty/);
});

Deno.test("verifyX509Svid rejects malformed DER", async () => {
  rejects(
    () => verifyX509Svid([new Uint8Array([0x30, 0x03, 0x02, 0x01])], bundlesA),
    /Leaf certificate is malformed/,
  );
  const good = await leaf(caA);
  rejects(
    () => verifyX509Svid([good, new Uint8Array([1, 2, 3])], bundlesA),
    /Intermediate certificate 1 is malformed/,
  );
});

Deno.test("verifyX509Svid rejects an expired leaf", async () => {
  const cert = await leaf(caA, undefined, {
    notBefore: new Date(Date.now() - 3 * HOUR),
    notAfter: new Date(Date.now() - HOUR),
  });
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /Leaf certificate has expired/,
  );
});

Deno.test("verifyX509Svid rejects a leaf that is not yet valid", async () => {
  const cert = await leaf(caA, undefined, {
    notBefore: new Date(Date.now() + HOUR),
    notAfter: new Date(Date.now() + 3 * HOUR),
  });
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /Leaf certificate is not yet valid/,
  );
});

Deno.test("verifyX509Svid checks validity at the given time", async () => {
  const cert = await leaf(caA);
  verifyX509Svid([cert], bundlesA, new Date());
  rejects(
    () =>
      verifyX509Svid([cert], bundlesA, new Date(Date.now() + 60 * 86_400_000)),
    /has expired/,
  );
});

Deno.test("verifyX509Svid rejects an expired bundle CA", async () => {
  const old = await createDevCa("old.org", {
    notBefore: new Date(Date.now() - 3 * HOUR),
    notAfter: new Date(Date.now() - HOUR),
  });
  const cert = await leaf(old);
  rejects(
    () => verifyX509Svid([cert], new Map([["old.org", [der(old)]]])),
    /bundle CA is not valid now/,
  );
});

Deno.test("verifyX509Svid rejects an expired intermediate", async () => {
  const inter = await issueIntermediateCa(caA, {
    notBefore: new Date(Date.now() - 3 * HOUR),
    notAfter: new Date(Date.now() - HOUR),
  });
  const cert = await leaf(inter);
  rejects(
    () => verifyX509Svid([cert, der(inter)], bundlesA),
    /Intermediate certificate 1 has expired/,
  );
});

Deno.test("verifyX509Svid rejects an intermediate without keyCertSign", async () => {
  const inter = await issueIntermediateCa(caA, {
    keyUsage: x509.KeyUsageFlags.digitalSignature,
  });
  const cert = await leaf(inter);
  rejects(
    () => verifyX509Svid([cert, der(inter)], bundlesA),
    /Intermediate certificate 1 lacks the keyCertSign key usage/,
  );
});

Deno.test("verifyX509Svid rejects a leaf presented as an intermediate", async () => {
  const other = await leaf(caA, "spiffe://a.org/other");
  const cert = await leaf(caA);
  rejects(
    () => verifyX509Svid([cert, other], bundlesA),
    /Intermediate certificate 1 is not a CA/,
  );
});

Deno.test("verifyX509Svid enforces the intermediate path length", async () => {
  const i1 = await issueIntermediateCa(caA, { pathLength: 0 });
  const i2 = await issueIntermediateCa(i1);
  const cert = await leaf(i2);
  rejects(
    () => verifyX509Svid([cert, der(i2), der(i1)], bundlesA),
    /path length constraint/,
  );
});

Deno.test("verifyX509Svid rejects a leaf without its intermediate", async () => {
  const inter = await issueIntermediateCa(caA);
  const cert = await leaf(inter);
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /does not verify against the trust bundle of "a.org"/,
  );
});

Deno.test("verifyX509Svid rejects a trust domain missing from the bundles", async () => {
  const cert = await leaf(caB);
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /No trust bundle for trust domain "b.org"/,
  );
});

Deno.test("verifyX509Svid rejects an empty bundle for the leaf's trust domain", async () => {
  const cert = await leaf(caA);
  rejects(
    () =>
      verifyX509Svid(
        [cert],
        new Map([["a.org", []], ["b.org", [der(caB)]]]),
      ),
    /Trust bundle for trust domain "a.org" is empty/,
  );
});

Deno.test("verifyX509Svid rejects a leaf signed by the CA of another trust domain", async () => {
  // b.org's CA is trusted, but only for b.org.
  const cert = await leaf(caB, "spiffe://a.org/spike/nexus");
  rejects(
    () => verifyX509Svid([cert], bundlesAB),
    /does not verify against the trust bundle of "a.org"/,
  );
});

Deno.test("verifyX509Svid rejects a leaf signed by an unknown CA of the same name", async () => {
  const cert = await leaf(impostor);
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /does not verify against the trust bundle of "a.org": no CA of the bundle signed it/,
  );
});

Deno.test("verifyX509Svid rejects a CA certificate as leaf", async () => {
  const cert = await leaf(caA, "spiffe://a.org/spike/nexus", { asCa: true });
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /Leaf certificate must not be a CA/,
  );
});

Deno.test("verifyX509Svid rejects a bundle CA presented as leaf", () => {
  rejects(
    () => verifyX509Svid([der(caA)], bundlesA),
    /Leaf certificate must not be a CA/,
  );
});

Deno.test("verifyX509Svid rejects a leaf without URI SAN", async () => {
  const cert = await leaf(caA, "spiffe://a.org/x", { uris: [] });
  rejects(() => verifyX509Svid([cert], bundlesA), /has no URI SAN/);
});

Deno.test("verifyX509Svid rejects a leaf with two URI SANs", async () => {
  const cert = await leaf(caA, "spiffe://a.org/x", {
    uris: ["spiffe://a.org/x", "spiffe://a.org/y"],
  });
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /has more than one URI SAN/,
  );
});

Deno.test("verifyX509Svid rejects a URI SAN that is not a SPIFFE ID", async () => {
  const cert = await leaf(caA, "x", { uris: ["https://a.org/x"] });
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /URI SAN is not a valid SPIFFE ID: Scheme is invalid/,
  );
});

Deno.test("verifyX509Svid rejects keyCertSign on a leaf", async () => {
  const cert = await leaf(caA, undefined, {
    keyUsage: x509.KeyUsageFlags.digitalSignature |
      x509.KeyUsageFlags.keyCertSign,
  });
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /must not have the keyCertSign key usage/,
  );
});

Deno.test("verifyX509Svid rejects cRLSign on a leaf", async () => {
  const cert = await leaf(caA, undefined, {
    keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.cRLSign,
  });
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /must not have the cRLSign key usage/,
  );
});

Deno.test("verifyX509Svid rejects a leaf without key usage", async () => {
  const cert = await leaf(caA, undefined, { noKeyUsage: true });
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /has no key usage extension/,
  );
});

Deno.test("verifyX509Svid rejects a leaf without digitalSignature", async () => {
  const cert = await leaf(caA, undefined, {
    keyUsage: x509.KeyUsageFlags.keyEncipherment,
  });
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /must have the digitalSignature key usage/,
  );
});

Deno.test("verifyX509Svid rejects a root-path SPIFFE ID", async () => {
  const cert = await leaf(caA, "spiffe://a.org");
  rejects(
    () => verifyX509Svid([cert], bundlesA),
    /must have a non-root path/,
  );
});

Deno.test("verifyOwnSvid accepts the matching private key", async () => {
  const svid = await issueSvid(caA, "spiffe://a.org/spike/keeper");
  const keyPem = new TextEncoder().encode(svid.keyPem);
  const copy = keyPem.slice();
  assert.equal(
    verifyOwnSvid([svid.certDer], keyPem, bundlesA).uri,
    "spiffe://a.org/spike/keeper",
  );
  assert.deepEqual(keyPem, copy, "the caller's key bytes are left intact");
});

Deno.test("verifyOwnSvid rejects a key of another certificate", async () => {
  const svid = await issueSvid(caA, "spiffe://a.org/spike/keeper");
  const other = await issueSvid(caA, "spiffe://a.org/spike/keeper");
  rejects(
    () =>
      verifyOwnSvid(
        [svid.certDer],
        new TextEncoder().encode(other.keyPem),
        bundlesA,
      ),
    /Private key does not match the leaf certificate/,
  );
});

Deno.test("verifyOwnSvid rejects a file without a PKCS#8 key", async () => {
  const svid = await issueSvid(caA, "spiffe://a.org/spike/keeper");
  rejects(
    () =>
      verifyOwnSvid(
        [svid.certDer],
        new TextEncoder().encode(svid.certPem),
        bundlesA,
      ),
    /holds no PKCS#8 PRIVATE KEY block/,
  );
  const garbage =
    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  rejects(
    () =>
      verifyOwnSvid(
        [svid.certDer],
        new TextEncoder().encode(garbage),
        bundlesA,
      ),
    /cannot be parsed as PKCS#8/,
  );
});

Deno.test("verifyOwnSvid applies the SVID rules first", async () => {
  const svid = await issueSvid(caA, "spiffe://a.org/spike/keeper", {
    asCa: true,
  });
  rejects(
    () =>
      verifyOwnSvid(
        [svid.certDer],
        new TextEncoder().encode(svid.keyPem),
        bundlesA,
      ),
    /must not be a CA/,
  );
});
