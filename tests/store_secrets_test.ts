// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Secret and policy behaviour, run identically on the memory and SQLite
// backends.
import assert from "node:assert/strict";
import { derivePurposeKeys, keyCheckValue } from "../lib/crypto/kdf.ts";
import { ApiError } from "../lib/wire/errors.ts";
import { type NexusStore, openStore } from "../modes/nexus/store/open.ts";

type Kind = "memory" | "sqlite";

interface Fixture extends AsyncDisposable {
  store: NexusStore;
}

async function fresh(kind: Kind, maxVersions = 10): Promise<Fixture> {
  const dir = kind === "sqlite" ? await Deno.makeTempDir() : undefined;
  const store = await openStore({
    backend: kind,
    maxVersions,
    ...(dir ? { dataDir: `${dir}/data` } : {}),
  });
  const storeId = crypto.getRandomValues(new Uint8Array(16));
  const root = crypto.getRandomValues(new Uint8Array(32));
  const keys = await derivePurposeKeys(root, storeId);
  await store.initMeta({
    storeId,
    keyCheck: await keyCheckValue(keys),
    threshold: 0,
    shareCount: 0,
    commitments: [],
  });
  await store.unlock(keys);
  return {
    store,
    async [Symbol.asyncDispose]() {
      await store.close();
      if (dir) await Deno.remove(dir, { recursive: true });
    },
  };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ApiError, `expected ApiError, got ${e}`);
    assert.equal(e.code, code);
    return true;
  });
}

const NOT_FOUND = "api_not_found";
const CONFLICT = "api_conflict";

for (const kind of ["memory", "sqlite"] as const) {
  Deno.test(`${kind}: versions start at 1 and each put reads back`, async () => {
    await using f = await fresh(kind);
    const s = f.store.secrets;
    assert.equal(await s.put("app/db", { user: "a", pass: "1" }), 1);
    assert.equal(await s.put("app/db", { user: "b" }), 2);
    assert.deepEqual(await s.get("app/db"), { user: "b" });
    assert.deepEqual(await s.get("app/db", 1), { user: "a", pass: "1" });
    assert.deepEqual(await s.get("app/db", 2), { user: "b" });
    assert.equal(await s.put("app/empty", {}), 1);
    assert.deepEqual(await s.get("app/empty"), {});
  });

  Deno.test(`${kind}: get reports not found for every missing case`, async () => {
    await using f = await fresh(kind);
    const s = f.store.secrets;
    await rejectsWith(s.get("nope"), NOT_FOUND);
    await s.put("p", { k: "v" });
    await rejectsWith(s.get("p", 2), NOT_FOUND);
    await s.delete("p", [1]);
    await rejectsWith(s.get("p", 1), NOT_FOUND);
    await rejectsWith(s.get("p"), NOT_FOUND);
  });

  Deno.test(`${kind}: pruning keeps the newest max versions and never reuses numbers`, async () => {
    await using f = await fresh(kind, 3);
    const s = f.store.secrets;
    for (let i = 1; i <= 5; i++) {
      assert.equal(await s.put("p", { i: `${i}` }), i);
    }
    await rejectsWith(s.get("p", 1), NOT_FOUND);
    await rejectsWith(s.get("p", 2), NOT_FOUND);
    assert.deepEqual(await s.get("p", 3), { i: "3" });
    const meta = await s.metadata("p");
    assert.deepEqual(Object.keys(meta.versions), ["3", "4", "5"]);
    assert.equal(meta.metadata.oldestVersion, 3);
    assert.equal(meta.metadata.currentVersion, 5);
    assert.equal(meta.metadata.maxVersions, 3);
    // Deleted versions count towards the max and are pruned like others.
    await s.delete("p", [5]);
    assert.equal(await s.put("p", { i: "6" }), 6);
    assert.deepEqual(
      Object.keys((await s.metadata("p")).versions),
      ["4", "5", "6"],
    );
  });

  Deno.test(`${kind}: a put after deleting every version takes the next number`, async () => {
    await using f = await fresh(kind);
    const s = f.store.secrets;
    await s.put("p", { a: "1" });
    await s.put("p", { a: "2" });
    await s.delete("p", [1, 2]);
    assert.equal(await s.put("p", { a: "3" }), 3);
    assert.deepEqual(await s.get("p"), { a: "3" });
  });

  Deno.test(`${kind}: cas writes only over the expected current version`, async () => {
    await using f = await fresh(kind);
    const s = f.store.secrets;
    assert.equal(await s.put("p", { a: "1" }, { cas: 0 }), 1);
    await rejectsWith(s.put("p", { a: "x" }, { cas: 0 }), CONFLICT);
    await rejectsWith(s.put("p", { a: "x" }, { cas: 2 }), CONFLICT);
    assert.equal(await s.put("p", { a: "2" }, { cas: 1 }), 2);
    assert.deepEqual(await s.get("p"), { a: "2" });
    // cas 0 also means "no live version": allowed after deleting all.
    await s.delete("p", [1, 2]);
    await rejectsWith(s.put("p", { a: "x" }, { cas: 2 }), CONFLICT);
    assert.equal(await s.put("p", { a: "3" }, { cas: 0 }), 3);
    // A refused cas wrote nothing.
    assert.deepEqual(Object.keys((await s.metadata("p")).versions), [
      "1",
      "2",
      "3",
    ]);
  });

  Deno.test(`${kind}: 50 concurrent puts to one path get distinct versions`, async () => {
    await using f = await fresh(kind, 20);
    const s = f.store.secrets;
    const versions = await Promise.all(
      Array.from({ length: 50 }, (_, i) => s.put("hot", { n: `${i}` })),
    );
    assert.deepEqual(
      [...versions].sort((a, b) => a - b),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    // Each returned version holds the value of the put that got it.
    for (let i = 0; i < 50; i++) {
      const v = versions[i]!;
      if (v > 30) assert.deepEqual(await s.get("hot", v), { n: `${i}` });
      else await rejectsWith(s.get("hot", v), NOT_FOUND);
    }
    const meta = await s.metadata("hot");
    assert.equal(Object.keys(meta.versions).length, 20);
    assert.equal(meta.metadata.currentVersion, 50);
    assert.equal(meta.metadata.oldestVersion, 31);
  });

  Deno.test(`${kind}: concurrent cas 0 puts let exactly one win`, async () => {
    await using f = await fresh(kind);
    const s = f.store.secrets;
    const results = await Promise.allSettled(
      Array.from(
        { length: 10 },
        (_, i) => s.put("once", { i: `${i}` }, { cas: 0 }),
      ),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of results) {
      if (r.status === "rejected") assert.equal(r.reason.code, CONFLICT);
    }
  });

  Deno.test(`${kind}: delete marks versions and moves the current version down`, async () => {
    await using f = await fresh(kind);
    const s = f.store.secrets;
    await rejectsWith(s.delete("nope"), NOT_FOUND);
    for (let i = 1; i <= 3; i++) await s.put("p", { i: `${i}` });
    await s.delete("p"); // empty list = current (3)
    assert.deepEqual(await s.get("p"), { i: "2" });
    let meta = await s.metadata("p");
    assert.equal(meta.metadata.currentVersion, 2);
    assert.notEqual(meta.versions["3"]!.deletedTime, null);
    assert.equal(meta.versions["2"]!.deletedTime, null);
    await s.delete("p", [0, 99]); // 0 = current (2); 99 ignored
    meta = await s.metadata("p");
    assert.equal(meta.metadata.currentVersion, 1);
    assert.equal(meta.metadata.oldestVersion, 1);
    await s.delete("p", [1]);
    await rejectsWith(s.metadata("p"), NOT_FOUND);
    // Deleting with no live version and unknown versions changes nothing.
    await s.delete("p");
    await s.delete("p", [42]);
    assert.deepEqual(await s.listPaths(), ["p"]);
  });

  Deno.test(`${kind}: deleting the oldest live version moves oldestVersion up`, async () => {
    await using f = await fresh(kind);
    const s = f.store.secrets;
    for (let i = 1; i <= 3; i++) await s.put("p", { i: `${i}` });
    await s.delete("p", [1]);
    const meta = await s.metadata("p");
    assert.equal(meta.metadata.oldestVersion, 2);
    assert.equal(meta.metadata.currentVersion, 3);
  });

  Deno.test(`${kind}: undelete restores versions and the current version`, async () => {
    await using f = await fresh(kind);
    const s = f.store.secrets;
    await rejectsWith(s.undelete("nope"), NOT_FOUND);
    for (let i = 1; i <= 3; i++) await s.put("p", { i: `${i}` });
    // Nothing deleted: nothing to undelete.
    await rejectsWith(s.undelete("p"), NOT_FOUND);
    await rejectsWith(s.undelete("p", [2]), NOT_FOUND);
    await s.delete("p", [2, 3]);
    assert.equal((await s.metadata("p")).metadata.currentVersion, 1);
    await s.undelete("p", [3]);
    assert.deepEqual(await s.get("p"), { i: "3" });
    assert.equal((await s.metadata("p")).versions["3"]!.deletedTime, null);
    // A list with one restorable version succeeds; unknown ones are ignored.
    await s.undelete("p", [2, 77]);
    assert.deepEqual(await s.get("p", 2), { i: "2" });
  });

  Deno.test(`${kind}: undelete of [0] or [] revives an all-deleted secret`, async () => {
    await using f = await fresh(kind);
    const s = f.store.secrets;
    await s.put("p", { i: "1" });
    await s.put("p", { i: "2" });
    await s.delete("p", [1, 2]);
    await rejectsWith(s.get("p"), NOT_FOUND);
    await s.undelete("p", [0]);
    assert.deepEqual(await s.get("p"), { i: "2" });
    // Only the highest deleted version came back.
    await rejectsWith(s.get("p", 1), NOT_FOUND);
    await s.delete("p");
    await s.undelete("p", []);
    assert.deepEqual(await s.get("p"), { i: "2" });
    const meta = await s.metadata("p");
    assert.equal(meta.metadata.currentVersion, 2);
    assert.equal(meta.metadata.oldestVersion, 2);
    assert.notEqual(meta.versions["1"]!.deletedTime, null);
  });

  Deno.test(`${kind}: metadata lists every version with times`, async () => {
    await using f = await fresh(kind);
    const s = f.store.secrets;
    const before = new Date().toISOString();
    await s.put("p", { a: "1" });
    await s.put("p", { a: "2" });
    await s.delete("p", [1]);
    const meta = await s.metadata("p");
    const after = new Date().toISOString();
    assert.deepEqual(Object.keys(meta.versions), ["1", "2"]);
    const v1 = meta.versions["1"]!;
    const v2 = meta.versions["2"]!;
    assert.equal(v1.version, 1);
    assert.equal(v2.version, 2);
    assert.equal(v2.deletedTime, null);
    for (const t of [v1.createdTime, v2.createdTime, v1.deletedTime!]) {
      assert.match(t, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      assert.ok(t >= before && t <= after);
    }
    const m = meta.metadata;
    assert.equal(m.currentVersion, 2);
    assert.equal(m.oldestVersion, 2);
    assert.equal(m.maxVersions, 10);
    assert.ok(m.createdTime <= m.updatedTime);
    assert.equal(m.createdTime, v1.createdTime);
    assert.equal(m.updatedTime, v2.createdTime);
    // A specific version must exist and be live.
    assert.equal((await s.metadata("p", 2)).metadata.currentVersion, 2);
    await rejectsWith(s.metadata("p", 1), NOT_FOUND);
    await rejectsWith(s.metadata("p", 3), NOT_FOUND);
    await rejectsWith(s.metadata("nope"), NOT_FOUND);
  });

  Deno.test(`${kind}: list returns every path sorted, all-deleted ones too`, async () => {
    await using f = await fresh(kind);
    const s = f.store.secrets;
    assert.deepEqual(await s.listPaths(), []);
    for (const p of ["b/2", "a", "b/1", "A", "gone"]) {
      await s.put(p, { k: "v" });
    }
    await s.delete("gone");
    assert.deepEqual(await s.listPaths(), ["A", "a", "b/1", "b/2", "gone"]);
  });

  Deno.test(`${kind}: bad input is refused before anything is stored`, async () => {
    await using f = await fresh(kind);
    const s = f.store.secrets;
    await rejectsWith(s.put("", { a: "b" }), "api_bad_request");
    await rejectsWith(
      s.put("p", { a: 1 } as unknown as Record<string, string>),
      "api_bad_request",
    );
    await rejectsWith(s.put("p", { a: "b" }, { cas: -1 }), "api_bad_request");
    await rejectsWith(s.get("p", 1.5), "api_bad_request");
    await rejectsWith(s.delete("p", [-1]), "api_bad_request");
    assert.deepEqual(await s.listPaths(), []);
  });

  Deno.test(`${kind}: policies are stored, replaced keeping createdAt, listed and deleted`, async () => {
    await using f = await fresh(kind);
    const p = f.store.policies;
    assert.equal(await p.getPolicy("ops"), undefined);
    const first = await p.putPolicy({
      name: "ops",
      spiffeIdPattern: "spiffe://example\\.org/ops/.*",
      pathPattern: "ops/.*",
      permissions: ["read", "list"],
    });
    assert.equal(first.createdAt, first.updatedAt);
    await new Promise((r) => setTimeout(r, 5));
    const second = await p.putPolicy({
      name: "ops",
      spiffeIdPattern: "spiffe://example\\.org/ops/admin",
      pathPattern: "ops/.*",
      permissions: ["write"],
    });
    assert.equal(second.createdAt, first.createdAt);
    assert.ok(second.updatedAt > first.updatedAt);
    assert.deepEqual(await p.getPolicy("ops"), second);
    await p.putPolicy({
      name: "b-team",
      spiffeIdPattern: "spiffe://example\\.org/b",
      pathPattern: "b/.*",
      permissions: ["super"],
    });
    assert.deepEqual(
      (await p.listPolicies()).map((r) => [r.name, r.permissions]),
      [["b-team", ["super"]], ["ops", ["write"]]],
    );
    assert.equal(await p.deletePolicy("ops"), true);
    assert.equal(await p.deletePolicy("ops"), false);
    assert.equal(await p.getPolicy("ops"), undefined);
    assert.deepEqual((await p.listPolicies()).map((r) => r.name), ["b-team"]);
  });

  Deno.test(`${kind}: meta is written once and read back without a key`, async () => {
    await using f = await fresh(kind);
    const meta = await f.store.readMeta();
    assert.ok(meta);
    assert.equal(meta.storeId.length, 16);
    await assert.rejects(
      f.store.initMeta({ ...meta, threshold: 0 }),
      { name: "StoreError", message: /already initialized/ },
    );
    assert.deepEqual(await f.store.readMeta(), meta);
  });
}

Deno.test("the store refuses data access while locked", async () => {
  const store = await openStore({ backend: "memory", maxVersions: 10 });
  try {
    assert.equal(store.unlocked, false);
    assert.throws(
      () => store.secrets,
      (e: unknown) => e instanceof ApiError && e.code === "state_not_ready",
    );
    assert.throws(
      () => store.policies,
      (e: unknown) => e instanceof ApiError && e.code === "state_not_ready",
    );
    assert.equal(await store.readMeta(), undefined);
    const keys = await derivePurposeKeys(
      crypto.getRandomValues(new Uint8Array(32)),
      new Uint8Array(16),
    );
    // No meta yet: unlock is refused.
    await assert.rejects(store.unlock(keys), { name: "StoreError" });
  } finally {
    await store.close();
  }
});
