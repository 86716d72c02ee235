// Copyright 2026 the SPIKE for Deno authors. MIT license.
import "reflect-metadata";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import {
  createDevCa,
  type DevCa,
  issueIntermediateCa,
  issueSvid,
  issueSvidDir,
  writeSvidDir,
} from "../scripts/dev_ca.ts";
import type { BundleConfig } from "../lib/spiffe/bundle_config.ts";
import { ConfigError } from "../lib/config/env.ts";
import {
  type FileSvidSource,
  openFileSvidSource,
  SvidFileError,
} from "../lib/spiffe/file_source.ts";
import type { X509Material } from "../lib/spiffe/source.ts";
import { isAllZero } from "../lib/crypto/zero.ts";
import { caPem } from "./mtls_support.ts";

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

/** Appends PEM text to the directory's bundle file. */
async function appendToBundle(dir: string, ...pems: string[]): Promise<void> {
  await Deno.writeTextFile(
    `${dir}/svid_bundle.pem`,
    await Deno.readTextFile(`${dir}/svid_bundle.pem`) + pems.join(""),
  );
}

function der(ca: DevCa): Uint8Array {
  return new Uint8Array(ca.cert.rawData);
}

const NOT_FEDERATED: BundleConfig = {
  federated: new Map(),
  trustCasWithoutId: false,
};

async function bundlesOf(
  dir: string,
  bundles: BundleConfig = NOT_FEDERATED,
): Promise<ReadonlyMap<string, readonly Uint8Array[]>> {
  const source = await openFileSvidSource(dir, { watch: false, bundles });
  try {
    return source.current().bundles;
  } finally {
    await closeAll(source);
  }
}

Deno.test("file source anchors only its own trust domain's CAs by default", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // What spiffe-helper's include_federated_domains writes: foreign CAs,
    // with and without a SPIFFE ID, appended to the local bundle.
    await issueSvidDir(caA, ID, dir, { bundle: [caA, caB] });
    await appendToBundle(dir, await plainCaPem());
    const bundles = await bundlesOf(dir);
    assert.deepEqual([...bundles.keys()], ["a.org"]);
    assert.deepEqual(bundles.get("a.org"), [der(caA)]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file source anchors a CA without a SPIFFE ID only when its SVID chains to it, or when told to", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const plainRoot = await createDevCa("a.org", { withoutSpiffeId: true });
    const unrelated = await createDevCa("a.org", { withoutSpiffeId: true });
    await issueSvidDir(plainRoot, ID, dir, { bundle: [plainRoot, unrelated] });
    const strict = await bundlesOf(dir);
    assert.deepEqual([...strict.keys()], ["a.org"]);
    assert.deepEqual(strict.get("a.org"), [der(plainRoot)]);

    const optedIn = await bundlesOf(dir, {
      federated: new Map(),
      trustCasWithoutId: true,
    });
    assert.deepEqual(optedIn.get("a.org"), [der(plainRoot), der(unrelated)]);

    // With the intermediate in the bundle file rather than svid.pem
    // (spiffe-helper's add_intermediates_to_bundle), the root still counts.
    const intermediate = await issueIntermediateCa(plainRoot);
    await issueSvidDir(intermediate, ID, dir, {
      bundle: [plainRoot, intermediate, unrelated],
    });
    assert.deepEqual((await bundlesOf(dir)).get("a.org"), [
      der(plainRoot),
      der(intermediate),
    ]);

    // An SVID from a CA that names its trust domain does not adopt a CA
    // without one, wherever it is in the file.
    await issueSvidDir(caA, ID, dir, { bundle: [unrelated, caA] });
    assert.deepEqual((await bundlesOf(dir)).get("a.org"), [der(caA)]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file source takes a federated trust domain's CAs from its named file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const caC = await createDevCa("c.org");
    await issueSvidDir(caA, ID, dir, { bundle: [caA, caB, caC] });
    const plainB = await createDevCa("b.org", { withoutSpiffeId: true });
    const fileB = `${dir}/federated-b.pem`;
    await Deno.writeTextFile(fileB, caPem(caB) + caPem(plainB));
    const bundles = await bundlesOf(dir, {
      federated: new Map([["b.org", fileB]]),
      trustCasWithoutId: false,
    });
    assert.deepEqual([...bundles.keys()].sort(), ["a.org", "b.org"]);
    assert.deepEqual(bundles.get("a.org"), [der(caA)]);
    // The CA naming b.org in svid_bundle.pem counts once; the file's CA
    // without a SPIFFE ID belongs to the domain the file is named for.
    assert.deepEqual(bundles.get("b.org"), [der(caB), der(plainB)]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file source refuses a federated bundle file that is missing or holds another domain's CA", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await issueSvidDir(caA, ID, dir);
    const leaf = await issueSvid(caB, "spiffe://b.org/workload/x");
    const cases: [string, string, RegExp][] = [
      [
        "b.org",
        `${dir}/none.pem`,
        /the bundle file of "b\.org", .*none\.pem, is missing/,
      ],
      ["b.org", `${dir}/c.pem`, /names trust domain "c\.org", not "b\.org"/],
      ["b.org", `${dir}/a.pem`, /names trust domain "a\.org", not "b\.org"/],
      ["b.org", `${dir}/leaf.pem`, /is not a CA certificate/],
      ["b.org", `${dir}/empty.pem`, /holds no certificate/],
      ["b.org", dir, /is a folder/],
      [
        "a.org",
        `${dir}/a.pem`,
        /names "a\.org", the trust domain of this SVID/,
      ],
    ];
    await Deno.writeTextFile(`${dir}/c.pem`, caPem(await createDevCa("c.org")));
    await Deno.writeTextFile(`${dir}/a.pem`, caPem(caA));
    await Deno.writeTextFile(`${dir}/leaf.pem`, leaf.certPem);
    await Deno.writeTextFile(`${dir}/empty.pem`, "\n");
    for (const [td, path, message] of cases) {
      await assert.rejects(
        () =>
          openFileSvidSource(dir, {
            watch: false,
            bundles: {
              federated: new Map([[td, path]]),
              trustCasWithoutId: false,
            },
          }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError, `${path}: ${e}`);
          assert.match(e.message, /^SPIKE_FEDERATED_BUNDLES/);
          assert.match(e.message, message);
          return true;
        },
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file source follows a rotation of a federated bundle file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await issueSvidDir(caA, ID, dir);
    const fileB = `${dir}/b.pem`;
    await Deno.writeTextFile(fileB, caPem(caB));
    const source = await openFileSvidSource(dir, {
      watch: false,
      pollMs: 50,
      bundles: {
        federated: new Map([["b.org", fileB]]),
        trustCasWithoutId: false,
      },
    });
    try {
      assert.deepEqual(source.current().bundles.get("b.org"), [der(caB)]);
      const updated = nextUpdate(source);
      const caB2 = await createDevCa("b.org");
      await replaceFile(fileB, caPem(caB) + caPem(caB2));
      const m = await within(updated, "federated bundle rotation");
      assert.deepEqual(m.bundles.get("b.org"), [der(caB), der(caB2)]);
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
