// Copyright 2026 the SPIKE for Deno authors. MIT license.
// A store written before the key and data lifecycle (tests/fixtures/format2,
// written by nexus at store format 2 with a keyring without encryption
// counts or key ages) opens as it is, serves what it held, starts a new,
// counted term at its first encryption, and takes rotate, rekey, backup and
// restore; a schema-1 store migrated now gets a counted keyring at once.
import assert from "node:assert/strict";
import { derivePurposeKeys, keyCheckValue } from "../lib/crypto/kdf.ts";
import { parseRecoveryText, type Shard } from "../lib/shard/mod.ts";
import { rebuildRootKey } from "../modes/nexus/lifecycle.ts";
import type { StoreMeta } from "../modes/nexus/store/backend.ts";
import { openKeyring } from "../modes/nexus/store/keyring.ts";
import { type NexusStore, openStore } from "../modes/nexus/store/open.ts";
import type { Logger } from "../lib/log.ts";
import { Cluster } from "../scripts/cluster.ts";

const FIXTURE = new URL("./fixtures/format2/", import.meta.url).pathname;
const SCHEMA1 = new URL("./fixtures/schema1/", import.meta.url).pathname;

interface Manifest {
  api: {
    secrets: Record<
      string,
      { metadata: unknown; values: Record<string, unknown> }
    >;
    policies: Record<string, Record<string, unknown>>;
  };
  cipher: {
    plaintext: string;
    version: number;
    nonce: string;
    ciphertext: string;
  };
}

const manifest: Manifest = JSON.parse(
  await Deno.readTextFile(`${FIXTURE}manifest.json`),
);

async function recoveryShards(dir: string): Promise<Shard[]> {
  const shards: Shard[] = [];
  for (const i of [1, 2]) {
    const text = new TextEncoder().encode(
      (await Deno.readTextFile(`${dir}recovery/spike.recovery.${i}.txt`))
        .trim(),
    );
    shards.push(parseRecoveryText(text));
  }
  return shards;
}

async function copyOf(fixture: string): Promise<{ dir: string; data: string }> {
  const dir = await Deno.makeTempDir();
  const data = `${dir}/data`;
  await Deno.mkdir(data, { mode: 0o700 });
  await Deno.copyFile(`${fixture}spike.db`, `${data}/spike.db`);
  await Deno.chmod(`${data}/spike.db`, 0o600);
  return { dir, data };
}

async function unlocked(
  fixture: string,
  data: string,
  lines: string[] = [],
): Promise<{ store: NexusStore; meta: StoreMeta }> {
  const log = {
    warn: (m: string) => lines.push(m),
    info: () => {},
    debug: () => {},
    error: (m: string) => lines.push(m),
  } as unknown as Logger;
  const store = await openStore({
    backend: "sqlite",
    dataDir: data,
    maxVersions: 10,
    log,
  });
  const meta = (await store.readMeta())!;
  const rebuilt = await rebuildRootKey(
    await recoveryShards(fixture),
    meta,
    false,
  );
  assert.ok(rebuilt, "the recovery files rebuild the key");
  await store.unlock(rebuilt.keys);
  return { store, meta };
}

Deno.test("a store written before the lifecycle serves what it held and starts a counted term at its first encryption", async () => {
  const { dir, data } = await copyOf(FIXTURE);
  const lines: string[] = [];
  const { store } = await unlocked(FIXTURE, data, lines);
  try {
    const doc = store.keys.keyring.document;
    assert.equal(doc.active, 1);
    assert.equal(doc.terms[0]!.reserved, undefined);
    assert.equal(doc.terms[0]!.created, null);
    assert.equal(doc.rootKeyCreated, null);
    assert.equal(store.keys.status().terms[0]!.encryptions, null);
    for (const [path, expected] of Object.entries(manifest.api.secrets)) {
      assert.deepEqual(await store.secrets.metadata(path), expected.metadata);
      for (const [v, values] of Object.entries(expected.values)) {
        if (values === null) continue;
        assert.deepEqual(
          await store.secrets.get(path, Number(v)),
          values,
          path,
        );
      }
    }
    const policy = await store.policies.getPolicy("db-readers");
    assert.equal(policy?.pathPattern, "apps/db/.*");
    // Its first encryption is made under a new term whose count is known.
    await store.secrets.put("apps/db/creds", { user: "admin", pass: "4" });
    assert.equal(store.keys.keyring.activeTerm, 2);
    assert.equal(store.keys.status().terms[1]!.encryptions, 2);
    assert.ok(lines.some((l) => /had no encryption count/.test(l)));
    assert.deepEqual(await store.secrets.get("apps/db/creds", 1), {
      user: "admin",
      pass: "pass-1",
    });
    // Rotation with re-encryption drops the uncounted term.
    await store.rotate(true);
    for (let i = 0; i < 200 && store.keys.keyring.document.reencrypt; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(store.keys.status().terms.map((t) => t.term), [3]);
    // A rekey re-wraps the old keyring as well.
    const next = await derivePurposeKeys(
      crypto.getRandomValues(new Uint8Array(32)),
      (await store.readMeta())!.storeId,
    );
    const window = await store.prepareRekey(next, {
      keyCheck: await keyCheckValue(next),
      threshold: 2,
      shareCount: 3,
      commitments: [1, 2, 3].map((i) => new Uint8Array(32).fill(i)),
    });
    await window.commit();
    assert.deepEqual(await store.secrets.get("fleet/host-07"), { token: "t7" });
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a schema-1 store migrated now gets a keyring that counts the encryptions of its migration", async () => {
  const { dir, data } = await copyOf(SCHEMA1);
  const { store } = await unlocked(SCHEMA1, data);
  try {
    const sealed = (await store.backend.readKeyring())!;
    const keys = store.keys.keys;
    const doc = (await openKeyring(keys.keyring, sealed)).document;
    assert.equal(doc.terms.length, 1);
    // Every head, version row, policy and the policy set was sealed once.
    const rows = await store.backend.countRecordsBelowTerm(2);
    assert.equal(doc.terms[0]!.reserved, rows);
    assert.ok(doc.terms[0]!.created);
    assert.equal(doc.rootKeyCreated, null);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "nexus on a store written before the lifecycle: restore from its recovery files, rekey, back up and restore it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await Cluster.create({ logLevel: "WARN" });
    try {
      await Deno.mkdir(cluster.dataDir, { mode: 0o700 });
      await Deno.copyFile(`${FIXTURE}spike.db`, `${cluster.dataDir}/spike.db`);
      await Deno.chmod(`${cluster.dataDir}/spike.db`, 0o600);
      await cluster.start();
      for (const i of [1, 3]) {
        const res = await cluster.pilot("restore", ["operator", "restore"], {
          stdin: await Deno.readTextFile(
            `${FIXTURE}recovery/spike.recovery.${i}.txt`,
          ),
        });
        assert.equal(res.code, 0, res.stderr);
      }
      await cluster.waitUnlocked();
      const status = await cluster.pilot("superuser", ["status"]);
      assert.match(
        status.stdout,
        /Root key: [0-9a-f]{16}, made before key ages were kept/,
      );
      assert.match(
        status.stdout,
        /Data key: term 1 since -, encryptions not counted/,
      );
      const decrypted = await cluster.call("superuser", "/v1/cipher/decrypt", {
        version: manifest.cipher.version,
        nonce: manifest.cipher.nonce,
        ciphertext: manifest.cipher.ciphertext,
      });
      assert.equal(
        new TextDecoder().decode(
          Uint8Array.fromBase64(decrypted.body!.plaintext as string),
        ),
        manifest.cipher.plaintext,
      );
      const rekey = await cluster.pilot("superuser", ["operator", "rekey"]);
      assert.equal(rekey.code, 0, rekey.stderr);
      const file = `${cluster.dir}/old-store.spkb`;
      const backup = await cluster.pilot("superuser", [
        "operator",
        "backup",
        "-o",
        file,
      ]);
      assert.equal(backup.code, 0, backup.stderr);
      await cluster.stopNexus("SIGTERM");
      await Deno.mkdir(`${cluster.dir}/host2`);
      cluster.dataDir = `${cluster.dir}/host2/data`;
      const restored = await cluster.nexusCommand(["restore-backup", file]);
      assert.equal(restored.code, 0, restored.stderr);
      await cluster.startNexus();
      await cluster.waitUnlocked();
      for (const [path, expected] of Object.entries(manifest.api.secrets)) {
        const meta = await cluster.call(
          "superuser",
          "/v1/store/secrets/metadata?action=get",
          { path },
        );
        assert.deepEqual(meta.body, expected.metadata, path);
      }
    } finally {
      await cluster.close();
    }
  },
});
