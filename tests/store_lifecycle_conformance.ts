// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The key and data lifecycle through the store, run identically on every
// backend: data-key rotation and its nonce budget, re-encryption of older
// terms, a rekey's pending root key, snapshots and restores. Each backend's
// conformance test file calls storeLifecycleConformance.
import assert from "node:assert/strict";
import { backupMac } from "../lib/backup/format.ts";
import { open, seal } from "../lib/crypto/aead.ts";
import { derivePurposeKeys, keyCheckValue } from "../lib/crypto/kdf.ts";
import { recordTerm, type SnapshotRow } from "../modes/nexus/store/backend.ts";
import {
  type NexusStore,
  openStore,
  type StoreConfig,
} from "../modes/nexus/store/open.ts";
import { rejectsWith, type StoreFixture } from "./store_support.ts";

const INTEGRITY = "state_integrity_check";

type Options = Pick<StoreConfig, "keyLimits" | "reencryptRate">;

/** Every sealed record's term, over the whole store. */
async function terms(store: NexusStore): Promise<Set<number>> {
  const seen = new Set<number>();
  await using snapshot = await store.openSnapshot();
  for await (const row of snapshot.rows()) {
    if (row.kind === "secret") {
      seen.add(recordTerm(row.records.head));
      for (const v of row.records.versions) seen.add(recordTerm(v.record));
    } else if (row.kind === "policy") {
      seen.add(recordTerm(row.record));
    } else {
      seen.add(recordTerm(row.set.record));
    }
  }
  return seen;
}

async function waitReencrypted(store: NexusStore): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (store.keys.keyring.document.reencrypt !== null) {
    if (Date.now() > deadline) throw new Error("Re-encryption did not end");
    await new Promise((r) => setTimeout(r, 20));
  }
}

const POLICY = {
  spiffeIdPattern: "spiffe://example\\.org/app",
  pathPattern: "app/.*",
  permissions: ["read"],
};

/**
 * Registers the lifecycle conformance tests of one backend.
 *
 * @param kind the backend's name, prefixed to every test name
 * @param fresh opens a new, unlocked store of the backend
 */
export function storeLifecycleConformance(
  kind: string,
  fresh: (options?: Options) => Promise<StoreFixture>,
): void {
  Deno.test(`${kind}: rotate seals new records with the new term and keeps every older value readable`, async () => {
    await using f = await fresh();
    const s = f.store.secrets;
    await s.put("a", { v: "1" });
    await s.put("a", { v: "2" });
    await f.store.policies.putPolicy({ name: "p", ...POLICY });
    assert.deepEqual(await terms(f.store), new Set([1]));
    const rotated = await f.store.rotate(false);
    assert.deepEqual(rotated, { term: 2, previous: 1, reencrypt: null });
    await s.put("a", { v: "3" });
    await s.put("b", { v: "x" });
    assert.equal(recordTerm((await f.store.backend.readSecret("a"))!.head), 2);
    assert.deepEqual(await s.get("a", 1), { v: "1" });
    assert.deepEqual(await s.get("a", 2), { v: "2" });
    assert.deepEqual(await s.get("a"), { v: "3" });
    assert.equal(
      (await f.store.policies.getPolicy("p"))?.pathPattern,
      "app/.*",
    );
    assert.deepEqual(await terms(f.store), new Set([1, 2]));
    const status = f.store.keys.status();
    assert.equal(status.activeTerm, 2);
    assert.deepEqual(status.terms.map((t) => t.term), [1, 2]);
  });

  Deno.test(`${kind}: a term that reaches its encryption budget gives way to a new term, and counts never fall behind the encryptions made`, async () => {
    await using f = await fresh({ keyLimits: { maxEncryptions: 40 } });
    const s = f.store.secrets;
    let seals = 0;
    for (let i = 0; i < 60; i++) {
      await s.put(`p${i % 7}`, { i: String(i) });
      seals += i < 7 ? 1 : 2;
      // The stored reservation always covers what was sealed with it.
      const stored = f.store.keys.status();
      for (const t of stored.terms) {
        assert.ok((t.encryptions ?? 0) <= 40, `term ${t.term} over budget`);
      }
    }
    const status = f.store.keys.status();
    assert.ok(status.activeTerm >= 3, `active term ${status.activeTerm}`);
    const total = status.terms.reduce((n, t) => n + (t.encryptions ?? 0), 0);
    assert.ok(total >= seals, `${total} counted for ${seals} seals`);
    for (let i = 0; i < 7; i++) assert.ok(await s.get(`p${i}`));
  });

  Deno.test(`${kind}: the cipher-API key stops encrypting at its budget and still decrypts`, async () => {
    await using f = await fresh({ keyLimits: { maxEncryptions: 16 } });
    for (let i = 0; i < 16; i++) await f.store.cipherSealKey();
    await rejectsWith(
      Promise.resolve().then(() => f.store.cipherSealKey()),
      "api_internal_error",
    );
    assert.ok(f.store.cipherKey);
  });

  Deno.test(`${kind}: re-encryption seals every older record with the active term and drops the older keys`, async () => {
    await using f = await fresh({ reencryptRate: 100_000 });
    const s = f.store.secrets;
    for (let i = 0; i < 150; i++) await s.put(`app/${i}`, { v: `${i}-1` });
    for (let i = 0; i < 150; i += 3) await s.put(`app/${i}`, { v: `${i}-2` });
    await s.delete("app/3", [1]);
    await f.store.policies.putPolicy({ name: "p", ...POLICY });
    await f.store.rotate(false);
    await s.put("app/0", { v: "0-3" });
    const before = await s.metadata("app/3");
    const revision = (await f.store.backend.readSecret("app/3"))!.revision;
    const started = await f.store.rotate(true);
    assert.equal(started.term, 3);
    assert.equal(started.reencrypt?.below, 3);
    assert.equal(started.reencrypt?.total, 150);
    // Writes go on during the pass.
    for (let i = 0; i < 150; i += 7) await s.put(`app/${i}`, { v: "during" });
    await waitReencrypted(f.store);
    assert.deepEqual(await terms(f.store), new Set([3]));
    assert.deepEqual(f.store.keys.status().terms.map((t) => t.term), [3]);
    assert.equal(await f.store.backend.countRecordsBelowTerm(3), 0);
    // Same content, same revision, same metadata.
    assert.deepEqual(await s.metadata("app/3"), before);
    assert.equal(
      (await f.store.backend.readSecret("app/3"))!.revision,
      revision,
    );
    assert.deepEqual(await s.get("app/3", 2), { v: "3-2" });
    await rejectsWith(s.get("app/3", 1), "api_not_found");
    assert.deepEqual(await s.get("app/0", 2), { v: "0-2" });
    assert.deepEqual(await s.get("app/7"), { v: "during" });
    assert.deepEqual(await s.get("app/149"), { v: "149-1" });
    assert.equal((await f.store.policies.getPolicy("p"))?.name, "p");
  });

  Deno.test(`${kind}: re-encryption leaves a record that fails its check, and keeps the older key for it`, async () => {
    await using f = await fresh({ reencryptRate: 100_000 });
    const s = f.store.secrets;
    await s.put("a", { v: "1" });
    await s.put("b", { v: "1" });
    // "a" gets b's head: it no longer opens where it is.
    const b = f.store.backend;
    await b.writeSecret("a", 1, { head: (await b.readSecret("b"))!.head });
    await f.store.rotate(true);
    await waitReencrypted(f.store);
    assert.deepEqual(f.store.keys.status().terms.map((t) => t.term), [1, 2]);
    assert.equal(await b.countRecordsBelowTerm(2), 1);
    assert.deepEqual(await s.get("b"), { v: "1" });
  });

  Deno.test(`${kind}: keyring writes are compare-and-set on the stored bytes`, async () => {
    await using f = await fresh();
    const b = f.store.backend;
    const stored = (await b.readKeyring())!;
    assert.equal(await b.writeKeyring(new Uint8Array([1, 2]), stored), false);
    assert.deepEqual(await b.readKeyring(), stored);
    assert.equal(await b.writeKeyring(stored, new Uint8Array([7])), true);
    assert.deepEqual(await b.readKeyring(), new Uint8Array([7]));
  });

  Deno.test(`${kind}: a pending root key waits beside the meta until committed or cleared`, async () => {
    await using f = await fresh();
    const b = f.store.backend;
    const meta = (await b.readMeta())!;
    const pending = {
      keyCheck: new Uint8Array(32).fill(7),
      threshold: 3,
      shareCount: 5,
      commitments: [1, 2, 3, 4, 5].map((i) => new Uint8Array(32).fill(i)),
    };
    const keyring = new Uint8Array([4, 2]);
    assert.equal(
      await b.writePendingRootKey(new Uint8Array(32), pending, keyring),
      false,
    );
    assert.equal(
      await b.writePendingRootKey(meta.keyCheck, pending, keyring),
      true,
    );
    const read = (await b.readMeta())!;
    assert.deepEqual(read.pending, pending);
    assert.deepEqual(read.keyCheck, meta.keyCheck);
    await b.clearPendingRootKey();
    assert.equal((await b.readMeta())!.pending, undefined);
    await b.writePendingRootKey(meta.keyCheck, pending, keyring);
    assert.equal(await b.commitPendingRootKey(new Uint8Array(32)), false);
    assert.equal(await b.commitPendingRootKey(pending.keyCheck), true);
    const after = (await b.readMeta())!;
    assert.equal(after.pending, undefined);
    assert.deepEqual(after.keyCheck, pending.keyCheck);
    assert.equal(after.threshold, 3);
    assert.equal(after.shareCount, 5);
    assert.deepEqual(after.commitments, pending.commitments);
    assert.deepEqual(after.storeId, meta.storeId);
    assert.deepEqual(await b.readKeyring(), keyring);
  });

  Deno.test(`${kind}: a rekey re-wraps the keyring only: data keys, records and cipher key stay`, async () => {
    await using f = await fresh();
    const s = f.store.secrets;
    await s.put("a", { v: "1" });
    const plaintext = new TextEncoder().encode("made before the rekey");
    const ciphertext = await seal(await f.store.cipherSealKey(), plaintext);
    const root = crypto.getRandomValues(new Uint8Array(32));
    const next = await derivePurposeKeys(root, f.keys.storeId);
    const pending = {
      keyCheck: await keyCheckValue(next),
      threshold: 2,
      shareCount: 3,
      commitments: [1, 2, 3].map((i) => new Uint8Array(32).fill(i)),
    };
    const window = await f.store.prepareRekey(next, pending);
    // Data writes go on while the rekey waits for its keepers.
    await s.put("a", { v: "2" });
    await window.commit();
    await s.put("a", { v: "3" });
    assert.deepEqual(await s.get("a", 1), { v: "1" });
    assert.deepEqual(await open(f.store.cipherKey, ciphertext), plaintext);
    const status = f.store.keys.status();
    assert.equal(status.recoveryExported, null);
    assert.ok(status.rootKeyCreated);
    // The old key no longer unlocks a second handle on the store; the new
    // one does.
    if (f.dataDir) {
      const other = await openStore({
        backend: "sqlite",
        dataDir: f.dataDir,
        maxVersions: 10,
      });
      try {
        await assert.rejects(other.unlock(f.keys.keys), /does not belong/);
        await other.unlock(next);
        assert.deepEqual(await other.secrets.get("a"), { v: "3" });
      } finally {
        await other.close();
      }
    }
  });

  Deno.test(`${kind}: an abandoned rekey leaves the store on its key`, async () => {
    await using f = await fresh();
    const next = await derivePurposeKeys(
      crypto.getRandomValues(new Uint8Array(32)),
      f.keys.storeId,
    );
    const window = await f.store.prepareRekey(next, {
      keyCheck: await keyCheckValue(next),
      threshold: 2,
      shareCount: 3,
      commitments: [1, 2, 3].map((i) => new Uint8Array(32).fill(i)),
    });
    await window.abort();
    assert.equal((await f.store.backend.readMeta())!.pending, undefined);
    await f.store.secrets.put("a", { v: "1" });
    await f.store.rotate(false);
  });

  Deno.test(`${kind}: a snapshot sees the store as it was when opened`, async () => {
    await using f = await fresh();
    const s = f.store.secrets;
    for (let i = 0; i < 300; i++) await s.put(`p/${i}`, { v: "old" });
    await f.store.policies.putPolicy({ name: "p", ...POLICY });
    await using snapshot = await f.store.openSnapshot();
    await s.put("p/0", { v: "new" });
    await s.put("q", { v: "new" });
    await f.store.policies.putPolicy({ name: "q", ...POLICY });
    const rows: SnapshotRow[] = [];
    for await (const row of snapshot.rows()) rows.push(row);
    const secrets = rows.flatMap((r) => r.kind === "secret" ? [r.records] : []);
    assert.equal(secrets.length, 300);
    assert.ok(
      secrets.every((r) => r.revision === 1 && r.versions.length === 0),
    );
    assert.deepEqual(
      rows.flatMap((r) => r.kind === "policy" ? [r.name] : []),
      ["p"],
    );
    assert.equal(
      rows.flatMap((r) => r.kind === "policySet" ? [r.set.generation] : [])[0],
      1,
    );
    assert.deepEqual(snapshot.keyring, await f.store.backend.readKeyring());
  });

  Deno.test(`${kind}: a store imported from a backup unlocks only when the backup's MAC verifies, then starts a new term`, async () => {
    await using source = await fresh();
    await source.store.secrets.put("a", { v: "1" });
    await source.store.secrets.put("a", { v: "2" });
    await source.store.policies.putPolicy({ name: "p", ...POLICY });
    const digest = crypto.getRandomValues(new Uint8Array(32));
    const mac = await backupMac(source.keys.keys.backup, digest);
    for (const good of [false, true]) {
      const dir = source.dataDir && await Deno.makeTempDir();
      const store = await openStore(
        dir
          ? { backend: "sqlite", dataDir: `${dir}/data`, maxVersions: 10 }
          : { backend: "memory", maxVersions: 10 },
      );
      try {
        await using snapshot = await source.store.openSnapshot();
        await store.backend.importStore({
          meta: snapshot.meta,
          keyring: snapshot.keyring,
          rows: snapshot.rows(),
          check: () =>
            Promise.resolve({
              digest,
              mac: good ? mac : new Uint8Array(32),
            }),
        });
        assert.ok(await store.backend.readRestoreCheck());
        if (!good) {
          await rejectsWith(store.unlock(source.keys.keys), INTEGRITY);
          assert.equal(store.unlocked, false);
          continue;
        }
        await store.unlock(source.keys.keys);
        assert.equal(await store.backend.readRestoreCheck(), undefined);
        assert.equal(store.keys.keyring.activeTerm, 2);
        assert.deepEqual(await store.secrets.get("a", 1), { v: "1" });
        assert.deepEqual(await store.secrets.get("a"), { v: "2" });
        assert.equal((await store.policies.getPolicy("p"))?.name, "p");
        await store.secrets.put("a", { v: "3" });
        assert.equal(
          recordTerm((await store.backend.readSecret("a"))!.head),
          2,
        );
      } finally {
        await store.close();
        if (dir) await Deno.remove(dir, { recursive: true });
      }
    }
  });

  Deno.test(`${kind}: an import that fails part-way writes nothing`, async () => {
    await using source = await fresh();
    for (let i = 0; i < 10; i++) await source.store.secrets.put(`p${i}`, {});
    const dir = source.dataDir && await Deno.makeTempDir();
    const store = await openStore(
      dir
        ? { backend: "sqlite", dataDir: `${dir}/data`, maxVersions: 10 }
        : { backend: "memory", maxVersions: 10 },
    );
    try {
      await using snapshot = await source.store.openSnapshot();
      await assert.rejects(
        store.backend.importStore({
          meta: snapshot.meta,
          keyring: snapshot.keyring,
          rows: snapshot.rows(),
          check: () => Promise.reject(new Error("The checksum does not match")),
        }),
        /checksum/,
      );
      assert.equal(await store.readMeta(), undefined);
      assert.equal(await store.backend.readRestoreCheck(), undefined);
    } finally {
      await store.close();
      if (dir) await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`${kind}: importing into a store that holds one is refused and changes nothing`, async () => {
    await using f = await fresh();
    await f.store.secrets.put("a", { v: "1" });
    const meta = (await f.store.backend.readMeta())!;
    await assert.rejects(
      f.store.backend.importStore({
        meta,
        keyring: (await f.store.backend.readKeyring())!,
        rows: (async function* () {})(),
        check: () => Promise.reject(new Error("Not reached")),
      }),
      { name: "StoreError" },
    );
    assert.deepEqual(await f.store.secrets.get("a"), { v: "1" });
  });
}
