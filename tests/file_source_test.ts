// Copyright 2026 the SPIKE for Deno authors. MIT license.
import "reflect-metadata";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import {
  createDevCa,
  issueSvid,
  issueSvidDir,
  writeSvidDir,
} from "../scripts/dev_ca.ts";
import {
  type FileSvidSource,
  openFileSvidSource,
  SvidFileError,
} from "../lib/spiffe/file_source.ts";
import type { X509Material } from "../lib/spiffe/source.ts";
import { isAllZero } from "../lib/crypto/zero.ts";

const caA = await createDevCa("a.org");
const caB = await createDevCa("b.org");
const ID = "spiffe://a.org/spike/keeper";

/** A CA whose certificate carries no SPIFFE URI SAN. */
async function plainCaPem(): Promise<string> {
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = await crypto.subtle.generateKey(alg, false, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: "CN=plain CA",
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  return cert.toString("pem");
}

/** Resolves with `promise`, or rejects if it takes longer than a generous bound. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out: ${what}`)), 15_000);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function nextUpdate(source: FileSvidSource): Promise<X509Material> {
  return new Promise((resolve) => {
    const off = source.onUpdate((m) => {
      off();
      resolve(m);
    });
  });
}

async function closeAll(source: FileSvidSource): Promise<void> {
  source.close();
  await source.settled();
}

async function expectFileError(
  fn: () => Promise<unknown>,
  message: RegExp,
): Promise<void> {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof SvidFileError, `not an SvidFileError: ${e}`);
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("file source loads an SVID directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const svid = await issueSvidDir(caA, ID, dir);
    const source = await openFileSvidSource(dir);
    try {
      const m = source.current();
      assert.equal(m.id.uri, ID);
      assert.deepEqual(m.chain, [svid.certDer]);
      assert.deepEqual(
        m.keyPem,
        await Deno.readFile(`${dir}/svid_key.pem`),
      );
      assert.deepEqual([...m.bundles.keys()], ["a.org"]);
      assert.deepEqual(m.bundles.get("a.org"), [
        new Uint8Array(caA.cert.rawData),
      ]);
    } finally {
      await closeAll(source);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file source groups bundle CAs by trust domain", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await issueSvidDir(caA, ID, dir, { bundle: [caA, caB] });
    const plain = await plainCaPem();
    await Deno.writeTextFile(
      `${dir}/svid_bundle.pem`,
      await Deno.readTextFile(`${dir}/svid_bundle.pem`) + plain,
    );
    const source = await openFileSvidSource(dir);
    try {
      const bundles = source.current().bundles;
      assert.deepEqual([...bundles.keys()].sort(), ["a.org", "b.org"]);
      // The CA without a SPIFFE ID belongs to the SVID's own trust domain.
      assert.equal(bundles.get("a.org")?.length, 2);
      assert.deepEqual(bundles.get("b.org"), [
        new Uint8Array(caB.cert.rawData),
      ]);
    } finally {
      await closeAll(source);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file source sees a rotation through the watcher", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await issueSvidDir(caA, ID, dir);
    const source = await openFileSvidSource(dir, { pollMs: 3_600_000 });
    try {
      const old = source.current();
      const updated = nextUpdate(source);
      const next = await issueSvidDir(caA, `${ID}/2`, dir);
      const m = await within(updated, "rotation event");
      assert.equal(m.id.uri, `${ID}/2`);
      assert.deepEqual(m.chain, [next.certDer]);
      assert.equal(source.current(), m);
      assert.ok(isAllZero(old.keyPem), "the replaced key is zeroed");
    } finally {
      await closeAll(source);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file source sees a rotation by polling", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await issueSvidDir(caA, ID, dir);
    const source = await openFileSvidSource(dir, { watch: false, pollMs: 50 });
    try {
      const updated = nextUpdate(source);
      // A new CA for the same trust domain: the bundle rotates too.
      const caA2 = await createDevCa("a.org");
      const next = await issueSvidDir(caA2, ID, dir);
      const m = await within(updated, "rotation by poll");
      assert.deepEqual(m.chain, [next.certDer]);
      assert.deepEqual(m.bundles.get("a.org"), [
        new Uint8Array(caA2.cert.rawData),
      ]);
    } finally {
      await closeAll(source);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Replaces a file atomically, as SVID writers do. */
async function replaceFile(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(`${path}.tmp`, text);
  await Deno.rename(`${path}.tmp`, path);
}

Deno.test("file source keeps the old material when an update is invalid", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const svid = await issueSvidDir(caA, ID, dir);
    const rejected: SvidFileError[] = [];
    const waiters: { pattern: RegExp; resolve: () => void }[] = [];
    const source = await openFileSvidSource(dir, {
      watch: false,
      pollMs: 50,
      onInvalidUpdate: (e) => {
        rejected.push(e);
        for (const w of waiters) if (w.pattern.test(e.message)) w.resolve();
      },
    });
    /** Resolves once an update is rejected with a message matching `pattern`. */
    const rejection = (pattern: RegExp) =>
      within(
        new Promise<void>((resolve) => waiters.push({ pattern, resolve })),
        `rejection ${pattern}`,
      );
    let updates = 0;
    source.onUpdate(() => updates++);
    try {
      const before = source.current();
      const keyCopy = before.keyPem.slice();

      // A certificate whose key is not in svid_key.pem.
      let seen = rejection(/Private key does not match/);
      const other = await issueSvid(caA, `${ID}/other`);
      await replaceFile(`${dir}/svid.pem`, other.certPem);
      await seen;

      // Garbage where the chain should be.
      seen = rejection(/svid\.pem: PEM block CERTIFICATE has no END line/);
      await replaceFile(`${dir}/svid.pem`, "-----BEGIN CERTIFICATE-----\nAAAA");
      await seen;

      // A leaf that is a CA, with its own key.
      seen = rejection(/must not be a CA/);
      const ca = await issueSvid(caA, ID, { asCa: true });
      await writeSvidDir(dir, ca, [caA]);
      await seen;

      assert.equal(updates, 0);
      assert.equal(source.current(), before);
      assert.deepEqual(source.current().chain, [svid.certDer]);
      assert.deepEqual(source.current().keyPem, keyCopy);
      for (const e of rejected) {
        assert.doesNotMatch(e.message, /PRIVATE KEY-----|MI[GH]/);
      }
    } finally {
      await closeAll(source);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file source names a missing file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await expectFileError(
      () => openFileSvidSource(`${dir}/nope`),
      /SVID file .*\/nope\/svid\.pem is missing/,
    );
    await expectFileError(
      () => openFileSvidSource(dir),
      /svid\.pem is missing/,
    );
    await issueSvidDir(caA, ID, dir);
    await Deno.remove(`${dir}/svid_key.pem`);
    await expectFileError(
      () => openFileSvidSource(dir),
      /SVID file .*\/svid_key\.pem is missing/,
    );
    await issueSvidDir(caA, ID, dir);
    await Deno.remove(`${dir}/svid_bundle.pem`);
    await expectFileError(
      () => openFileSvidSource(dir),
      /svid_bundle\.pem is missing/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file source rejects an invalid SVID at open", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await issueSvidDir(caA, ID, dir, { bundle: [caB] });
    await expectFileError(
      () => openFileSvidSource(dir),
      /No trust bundle for trust domain "a\.org"/,
    );
    await Deno.writeTextFile(`${dir}/svid_bundle.pem`, "\n");
    await expectFileError(
      () => openFileSvidSource(dir),
      /svid_bundle\.pem holds no certificate/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file source close zeroes the key and stops the source", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await issueSvidDir(caA, ID, dir);
    let key: Uint8Array;
    {
      using source = await openFileSvidSource(dir);
      key = source.current().keyPem;
      assert.ok(!isAllZero(key));
    }
    assert.ok(isAllZero(key), "disposal zeroes the key");

    const source = await openFileSvidSource(dir);
    source.close();
    source.close();
    await source.settled();
    assert.throws(() => source.current(), /closed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
