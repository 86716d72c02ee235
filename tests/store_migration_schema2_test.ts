// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Migration of a schema-2 store (tests/fixtures/schema2, written by store
// format 2 before the store digest) to schema 3: on first unlock every row
// is checked and the digest anchored, keeping every answer the store gave;
// a row that fails its check is named, anchored as it is, and still
// refused. The fixture is unlocked with its recovery files.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openParts } from "../lib/crypto/aead.ts";
import type { Logger } from "../lib/log.ts";
import { parseRecoveryText } from "../lib/shard/mod.ts";
import { rebuildRootKey } from "../modes/nexus/lifecycle.ts";
import { SCHEMA_VERSION } from "../modes/nexus/store/backend.ts";
import { type NexusStore, openStore } from "../modes/nexus/store/open.ts";
import { rejectsWith } from "./store_support.ts";

const FIXTURE = new URL("./fixtures/schema2/", import.meta.url).pathname;

interface Manifest {
  schemaVersion: number;
  api: {
    secrets: Record<string, {
      metadata: unknown;
      values: Record<string, Record<string, string> | null>;
    }>;
    policies: Record<string, Record<string, unknown>>;
  };
  rows: { revisions: Record<string, number>; policyGeneration: number };
  deletedPolicies: string[];
  cipher: { plaintext: string; nonce: string; ciphertext: string };
}

const manifest: Manifest = JSON.parse(
  await Deno.readTextFile(`${FIXTURE}manifest.json`),
);

async function fixtureCopy() {
  const dir = await Deno.makeTempDir();
  const dataDir = `${dir}/data`;
  await Deno.mkdir(dataDir, { mode: 0o700 });
  const file = `${dataDir}/spike.db`;
  await Deno.copyFile(`${FIXTURE}spike.db`, file);
  await Deno.chmod(file, 0o600);
  return {
    dataDir,
    file,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

async function unlockCopy(
  dataDir: string,
  lines: string[] = [],
): Promise<NexusStore> {
  const record = (msg: string, fields?: Record<string, unknown>) =>
    lines.push(`${msg} ${JSON.stringify(fields ?? {})}`);
  const log: Logger = {
    debug: record,
    info: record,
    warn: record,
    error: record,
  };
  const store = await openStore({
    backend: "sqlite",
    dataDir,
    maxVersions: 10,
    log,
  });
  const shards = await Promise.all([1, 2].map(async (i) =>
    parseRecoveryText(
      await Deno.readFile(`${FIXTURE}recovery/spike.recovery.${i}.txt`),
    )
  ));
  const rebuilt = await rebuildRootKey(
    shards,
    (await store.readMeta())!,
    false,
  );
  assert.ok(rebuilt, "the recovery files rebuild the fixture's key");
  try {
    await store.unlock(rebuilt.keys);
    return store;
  } catch (e) {
    await store.close();
    throw e;
  } finally {
    rebuilt.key.fill(0);
  }
}

function sql(file: string, statement: string): Record<string, unknown>[] {
  const db = new DatabaseSync(file);
  try {
    return db.prepare(statement).all();
  } finally {
    db.close();
  }
}

Deno.test("a schema-2 store is checked and anchored on its first unlock, answering as before", async () => {
  await using copy = await fixtureCopy();
  assert.equal(manifest.schemaVersion, 2);
  const lines: string[] = [];
  const store = await unlockCopy(copy.dataDir, lines);
  try {
    assert.equal((await store.readMeta())!.schemaVersion, SCHEMA_VERSION);
    assert.equal(store.hold, undefined);
    assert.ok(
      lines.some((l) => l.startsWith("Checking every row")),
      lines.join("\n"),
    );
    assert.ok(lines.some((l) => l.startsWith("Store digest anchored")));
    assert.ok(
      !lines.some((l) => /Anchored as it is/.test(l)),
      lines.join("\n"),
    );
    // The generation counts every write the fixture's store holds.
    const revisions = Object.values(manifest.rows.revisions);
    const writes = revisions.reduce((a, b) => a + b, 0) +
      manifest.rows.policyGeneration;
    const [row] = sql(copy.file, "SELECT epoch, generation FROM integrity");
    assert.deepEqual({ ...row }, { epoch: 0, generation: writes });
    assert.equal(store.ledger!.row.generation, writes);

    const secrets = store.secrets;
    for (const [path, api] of Object.entries(manifest.api.secrets)) {
      if (api.metadata === null) {
        await rejectsWith(secrets.metadata(path), "api_not_found");
      } else assert.deepEqual(await secrets.metadata(path), api.metadata);
      for (const [v, values] of Object.entries(api.values)) {
        if (values === null) {
          await rejectsWith(secrets.get(path, Number(v)), "api_not_found");
        } else {
          assert.deepEqual(await secrets.get(path, Number(v)), values, path);
        }
      }
    }
    for (const [name, api] of Object.entries(manifest.api.policies)) {
      const p = (await store.policies.getPolicy(name))!;
      assert.equal(p.spiffeIdPattern, api.spiffeidPattern);
      assert.equal(p.pathPattern, api.pathPattern);
      assert.deepEqual(p.permissions, api.permissions);
      assert.equal(p.createdAt, api.createdAt);
      assert.equal(p.updatedAt, api.updatedAt);
    }
    for (const name of manifest.deletedPolicies) {
      assert.equal(await store.policies.getPolicy(name), undefined);
    }
    const plaintext = await openParts(
      store.cipherKey,
      Uint8Array.fromBase64(manifest.cipher.nonce),
      Uint8Array.fromBase64(manifest.cipher.ciphertext),
    );
    assert.equal(
      new TextDecoder().decode(plaintext),
      manifest.cipher.plaintext,
    );
    // Writes go on from the anchored digest.
    assert.equal(await secrets.put("apps/db/creds", { pass: "four" }), 4);
    assert.equal(store.ledger!.row.generation, writes + 1);
    const report = await store.check();
    assert.equal(report.problemCount, 0, JSON.stringify(report.problems));
    assert.equal(report.secrets, revisions.length);
  } finally {
    await store.close();
  }
  // Reopened: schema 3, the digest verified, nothing anchored again.
  const again: string[] = [];
  const reopened = await unlockCopy(copy.dataDir, again);
  try {
    assert.equal(reopened.hold, undefined);
    assert.ok(!again.some((l) => /anchor|Checking/.test(l)), again.join("\n"));
    assert.deepEqual(await reopened.secrets.get("apps/db/creds"), {
      pass: "four",
    });
  } finally {
    await reopened.close();
  }
});

Deno.test("a schema-2 row that fails its check is named when anchoring and still refused", async () => {
  await using copy = await fixtureCopy();
  const db = new DatabaseSync(copy.file);
  try {
    const where = "WHERE path = 'apps/db/creds' AND version = 1";
    const { record } = db.prepare(
      `SELECT record FROM secret_versions ${where}`,
    ).get() as { record: Uint8Array };
    record[30]! ^= 1;
    db.prepare(`UPDATE secret_versions SET record = ? ${where}`).run(record);
  } finally {
    db.close();
  }
  const lines: string[] = [];
  const store = await unlockCopy(copy.dataDir, lines);
  try {
    assert.equal(store.hold, undefined);
    assert.ok(
      lines.some((l) =>
        /Anchored as it is: Stored secret "apps\/db\/creds" version 1 does not open/
          .test(l)
      ),
      lines.join("\n"),
    );
    await rejectsWith(
      store.secrets.get("apps/db/creds", 1),
      "state_integrity_check",
    );
    assert.deepEqual(await store.secrets.get("apps/db/creds"), {
      user: "admin",
      pass: "three",
      port: "5432",
    });
  } finally {
    await store.close();
  }
});
