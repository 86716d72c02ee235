// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The conformance suite of the storage backends: secret, policy and list
// behaviour through the store, and the backend's own contract (compare-and-
// set, keyset ranges, keyring), run identically on every backend. Each
// backend has a test file that calls storeConformance with its fixture.
import assert from "node:assert/strict";
import { derivePurposeKeys, keyCheckValue } from "../lib/crypto/kdf.ts";
import { openStore } from "../modes/nexus/store/open.ts";
import type { ListPage } from "../modes/nexus/store/key_listing.ts";
import type { SecretService } from "../modes/nexus/secrets/secret_service.ts";
import { IntegrityLedger } from "../modes/nexus/store/integrity_ledger.ts";
import { rejectsWith, type StoreFixture } from "./store_support.ts";

const NOT_FOUND = "api_not_found";
const CONFLICT = "api_conflict";
const INTEGRITY = "state_integrity_check";

const ALL: ListPage = { prefix: "", after: "", limit: undefined };

async function paths(s: SecretService): Promise<string[]> {
  return (await s.list(ALL)).keys;
}

/**
 * Registers the conformance tests of one backend.
 *
 * @param kind the backend's name, prefixed to every test name
 * @param fresh opens a new, unlocked store of the backend
 */
export function storeConformance(
  kind: string,
  fresh: (maxVersions?: number) => Promise<StoreFixture>,
): void {
  Deno.test(`${kind}: versions start at 1 and each put reads back`, async () => {
    await using f = await fresh();
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
    await using f = await fresh();
    const s = f.store.secrets;
    await rejectsWith(s.get("nope"), NOT_FOUND);
    await s.put("p", { k: "v" });
    await rejectsWith(s.get("p", 2), NOT_FOUND);
    await s.delete("p", [1]);
    await rejectsWith(s.get("p", 1), NOT_FOUND);
    await rejectsWith(s.get("p"), NOT_FOUND);
  });

  Deno.test(`${kind}: pruning keeps the newest max versions and never reuses numbers`, async () => {
    await using f = await fresh(3);
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
    await using f = await fresh();
    const s = f.store.secrets;
    await s.put("p", { a: "1" });
    await s.put("p", { a: "2" });
    await s.delete("p", [1, 2]);
    assert.equal(await s.put("p", { a: "3" }), 3);
    assert.deepEqual(await s.get("p"), { a: "3" });
  });

  Deno.test(`${kind}: cas writes only over the expected current version`, async () => {
    await using f = await fresh();
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
    await using f = await fresh(20);
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
    await using f = await fresh();
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
    await using f = await fresh();
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
    assert.deepEqual(await paths(s), ["p"]);
  });

  Deno.test(`${kind}: deleting the oldest live version moves oldestVersion up`, async () => {
    await using f = await fresh();
    const s = f.store.secrets;
    for (let i = 1; i <= 3; i++) await s.put("p", { i: `${i}` });
    await s.delete("p", [1]);
    const meta = await s.metadata("p");
    assert.equal(meta.metadata.oldestVersion, 2);
    assert.equal(meta.metadata.currentVersion, 3);
  });

  Deno.test(`${kind}: undelete restores versions and the current version`, async () => {
    await using f = await fresh();
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
    await using f = await fresh();
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
    await using f = await fresh();
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
    await using f = await fresh();
    const s = f.store.secrets;
    assert.deepEqual(await paths(s), []);
    for (const p of ["b/2", "a", "b/1", "A", "gone"]) {
      await s.put(p, { k: "v" });
    }
    await s.delete("gone");
    assert.deepEqual(await paths(s), ["A", "a", "b/1", "b/2", "gone"]);
  });

  Deno.test(`${kind}: bad input is refused before anything is stored`, async () => {
    await using f = await fresh();
    const s = f.store.secrets;
    await rejectsWith(s.put("", { a: "b" }), "api_bad_request");
    await rejectsWith(
      s.put("p", { a: 1 } as unknown as Record<string, string>),
      "api_bad_request",
    );
    await rejectsWith(s.put("p", { a: "b" }, { cas: -1 }), "api_bad_request");
    await rejectsWith(s.get("p", 1.5), "api_bad_request");
    await rejectsWith(s.delete("p", [-1]), "api_bad_request");
    assert.deepEqual(await paths(s), []);
  });

  Deno.test(`${kind}: policies are stored, replaced keeping createdAt, listed and deleted`, async () => {
    await using f = await fresh();
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
      (await p.loadPolicies(assert.fail)).map((r) => [r.name, r.permissions]),
      [["b-team", ["super"]], ["ops", ["write"]]],
    );
    assert.equal(await p.deletePolicy("ops"), true);
    assert.equal(await p.deletePolicy("ops"), false);
    assert.equal(await p.getPolicy("ops"), undefined);
    assert.deepEqual((await p.loadPolicies(assert.fail)).map((r) => r.name), [
      "b-team",
    ]);
  });

  Deno.test(`${kind}: meta is written once and read back without a key`, async () => {
    await using f = await fresh();
    const meta = await f.store.readMeta();
    assert.ok(meta);
    assert.equal(meta.storeId.length, 16);
    await assert.rejects(
      f.store.initMeta({ ...meta, threshold: 0 }),
      { name: "StoreError", message: /already initialized/ },
    );
    assert.deepEqual(await f.store.readMeta(), meta);
  });

  Deno.test(`${kind}: list pages by keyset with prefix, cursor and limit`, async () => {
    await using f = await fresh();
    const s = f.store.secrets;
    const all = ["a", "a/1", "a/2", "a/b/1", "ab", "b/1", "b/2", "c"];
    for (const p of [...all].reverse()) await s.put(p, { k: "v" });
    assert.deepEqual(await s.list(ALL), { keys: all });
    const page = (prefix: string, after: string, limit?: number) =>
      s.list({ prefix, after, limit });
    assert.deepEqual(await page("", "", 3), {
      keys: ["a", "a/1", "a/2"],
      next: "a/2",
    });
    assert.deepEqual(await page("", "a/2", 3), {
      keys: ["a/b/1", "ab", "b/1"],
      next: "b/1",
    });
    assert.deepEqual(await page("", "b/1", 3), { keys: ["b/2", "c"] });
    // A last page that is exactly full has no cursor.
    assert.deepEqual(await page("", "a/b/1", 4), {
      keys: ["ab", "b/1", "b/2", "c"],
    });
    assert.deepEqual(await page("a/", "", 10), {
      keys: ["a/1", "a/2", "a/b/1"],
    });
    assert.deepEqual(await page("a", "", 10), {
      keys: ["a", "a/1", "a/2", "a/b/1", "ab"],
    });
    // A cursor before the prefix starts at the prefix.
    assert.deepEqual(await page("b/", "a", 10), { keys: ["b/1", "b/2"] });
    assert.deepEqual(await page("b/", "b/1", 10), { keys: ["b/2"] });
    assert.deepEqual(await page("", "c", 10), { keys: [] });
    assert.deepEqual(await page("zz", "", 10), { keys: [] });
    assert.deepEqual(await page("", "", undefined), { keys: all });
  });

  Deno.test(`${kind}: list shows a scope only what it allows, in pages`, async () => {
    await using f = await fresh();
    const s = f.store.secrets;
    for (const p of ["t/acme/db", "t/acme/web", "t/beta/db", "u/x", "v"]) {
      await s.put(p, { k: "v" });
    }
    const scope = {
      prefixes: ["t/acme/", "v", "t/acme/w"],
      allows: (p: string) => p !== "t/acme/web",
    };
    assert.deepEqual(await s.list(ALL, scope), { keys: ["t/acme/db", "v"] });
    const first = await s.list({ prefix: "", after: "", limit: 1 }, scope);
    assert.deepEqual(first, { keys: ["t/acme/db"], next: "t/acme/db" });
    assert.deepEqual(
      await s.list({ prefix: "", after: first.next!, limit: 1 }, scope),
      { keys: ["v"] },
    );
    assert.deepEqual(
      await s.list({ prefix: "t/", after: "", limit: 10 }, scope),
      { keys: ["t/acme/db"] },
    );
    assert.deepEqual(
      await s.list(ALL, { prefixes: [""], allows: (p) => p.endsWith("db") }),
      { keys: ["t/acme/db", "t/beta/db"] },
    );
    assert.deepEqual(
      await s.list(ALL, { prefixes: [], allows: () => true }),
      { keys: [] },
    );
  });

  Deno.test(`${kind}: list pages stay consistent under concurrent writes`, async () => {
    await using f = await fresh();
    const s = f.store.secrets;
    const name = (i: number) => `p/${String(i).padStart(4, "0")}`;
    const start: string[] = [];
    for (let i = 0; i < 200; i += 2) start.push(name(i));
    for (const p of start) await s.put(p, { k: "v" });
    // Writers add the odd paths and new versions of old ones while a
    // reader pages through.
    let stop = false;
    const writer = (async () => {
      for (let i = 1; i < 200 && !stop; i += 2) {
        await Promise.all([
          s.put(name(i), { k: "new" }),
          s.put(name(i - 1), { k: "again" }),
        ]);
      }
    })();
    const seen: string[] = [];
    let after = "";
    for (;;) {
      const { keys, next } = await s.list({ prefix: "p/", after, limit: 7 });
      seen.push(...keys);
      if (next === undefined) break;
      assert.equal(next, keys.at(-1));
      after = next;
      await new Promise((r) => setTimeout(r, 1));
    }
    stop = true;
    await writer;
    // In order, no key twice, every key that existed throughout.
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1]! < seen[i]!);
    for (const p of start) assert.ok(seen.includes(p), p);
    const now = new Set(await paths(s));
    for (const p of seen) assert.ok(now.has(p));
  });

  Deno.test(`${kind}: backend secret writes are compare-and-set on the revision`, async () => {
    await using f = await fresh();
    const s = f.store.secrets;
    const b = f.store.backend;
    await s.put("p", { k: "one" });
    const row = (await b.readSecret("p"))!;
    assert.equal(row.revision, 1);
    assert.deepEqual(row.versions, { count: 0, lowest: 0, highest: 0 });
    assert.equal(row.record, undefined);
    const head = row.head;
    const stale = { ok: false, conflict: true };
    assert.deepEqual(await b.writeSecret("p", 0, { head }), stale);
    assert.deepEqual(await b.writeSecret("p", 2, { head }), stale);
    assert.deepEqual(await b.writeSecret("new", 1, { head }), stale);
    assert.equal(await b.readSecret("new"), undefined);
    const record = new Uint8Array([1, 2, 3]);
    assert.deepEqual(
      await b.writeSecret("p", 1, { head, insert: { version: 1, record } }),
      { ok: true, revision: 2 },
    );
    const two = (await b.readSecret("p", 1))!;
    assert.deepEqual(two.versions, { count: 1, lowest: 1, highest: 1 });
    assert.deepEqual(two.record, record);
    // An existing version number is refused and changes nothing.
    await rejectsWith(
      b.writeSecret("p", 2, { head, insert: { version: 1, record } }),
      INTEGRITY,
    );
    assert.equal((await b.readSecret("p"))!.revision, 2);
    await b.writeSecret("p", 2, {
      head,
      insert: { version: 2, record },
      pruneBelow: 2,
    });
    assert.deepEqual((await b.readSecret("p"))!.versions, {
      count: 1,
      lowest: 2,
      highest: 2,
    });
    // The head sealed for revision 1 does not open at revision 3.
    await rejectsWith(s.get("p"), INTEGRITY);
    await rejectsWith(s.put("p", { k: "x" }), INTEGRITY);
  });

  Deno.test(`${kind}: backend lists key ranges by keyset`, async () => {
    await using f = await fresh();
    for (const p of ["a", "a/x", "a/y", "b", "b/x"]) {
      await f.store.secrets.put(p, { k: "v" });
    }
    const b = f.store.backend;
    assert.deepEqual(await b.listSecretPaths({}), [
      "a",
      "a/x",
      "a/y",
      "b",
      "b/x",
    ]);
    assert.deepEqual(await b.listSecretPaths({ limit: 2 }), ["a", "a/x"]);
    assert.deepEqual(await b.listSecretPaths({ after: "a/x", limit: 2 }), [
      "a/y",
      "b",
    ]);
    assert.deepEqual(await b.listSecretPaths({ prefix: "a/" }), ["a/x", "a/y"]);
    assert.deepEqual(await b.listSecretPaths({ prefix: "b", after: "b" }), [
      "b/x",
    ]);
    assert.deepEqual(
      await b.listSecretPaths({ prefix: "a/", after: "a/y" }),
      [],
    );
    // A cursor below the prefix's range starts at the range, one above it
    // ends the listing, one inside it goes on after it.
    assert.deepEqual(await b.listSecretPaths({ prefix: "b", after: "a/x" }), [
      "b",
      "b/x",
    ]);
    assert.deepEqual(await b.listSecretPaths({ prefix: "a/", after: "b" }), []);
    assert.deepEqual(
      await b.listSecretPaths({ prefix: "a", after: "a", limit: 1 }),
      ["a/x"],
    );
    assert.deepEqual(
      await b.listSecretPaths({ prefix: "a", after: "", limit: 2 }),
      ["a", "a/x"],
    );
  });

  Deno.test(`${kind}: backend policy writes are compare-and-set on the generation`, async () => {
    await using f = await fresh();
    const p = f.store.policies;
    const b = f.store.backend;
    assert.equal(await b.readPolicySet(), undefined);
    assert.deepEqual(await b.readPolicy("x"), {});
    const policy = {
      spiffeIdPattern: "spiffe://example\\.org/x",
      pathPattern: "x/.*",
      permissions: ["read"],
    };
    await p.putPolicy({ name: "x", ...policy });
    await p.putPolicy({ name: "y", ...policy });
    const set = (await b.readPolicySet())!;
    assert.equal(set.generation, 2);
    const read = await b.readPolicy("x");
    assert.deepEqual(read.set, set);
    assert.ok(read.record);
    const stale = { ok: false, conflict: true };
    assert.deepEqual(
      await b.writePolicy(0, set.record, { name: "z", record: read.record }),
      stale,
    );
    assert.deepEqual(
      await b.writePolicy(1, set.record, { name: "z", record: read.record }),
      stale,
    );
    assert.deepEqual((await b.readPolicies()).rows.map((r) => r.name), [
      "x",
      "y",
    ]);
    // The set sealed for generation 2, put back at 3, does not open.
    assert.deepEqual(await b.writePolicy(2, set.record, { name: "y" }), {
      ok: true,
      revision: 3,
    });
    await rejectsWith(p.getPolicy("x"), INTEGRITY);
    await rejectsWith(p.loadPolicies(assert.fail), INTEGRITY);
  });

  Deno.test(`${kind}: the keyring is made once and kept`, async () => {
    await using f = await fresh();
    const b = f.store.backend;
    const keyring = await b.readKeyring();
    assert.ok(keyring);
    assert.deepEqual(await b.initKeyring(new Uint8Array([9, 9, 9])), keyring);
    assert.deepEqual(await b.readKeyring(), keyring);
  });

  Deno.test(`${kind}: a head copied from another path does not open`, async () => {
    await using f = await fresh();
    const s = f.store.secrets;
    const b = f.store.backend;
    await s.put("a", { k: "alpha" });
    await s.put("b", { k: "bravo" });
    const other = (await b.readSecret("b"))!.head;
    await b.writeSecret("a", 1, { head: other });
    const e = await rejectsWith(s.get("a"), INTEGRITY);
    assert.doesNotMatch(e.message, /alpha|bravo/);
    await rejectsWith(s.metadata("a"), INTEGRITY);
    assert.deepEqual(await s.get("b"), { k: "bravo" });
  });

  Deno.test(`${kind}: every write keeps the integrity row in step with the rows`, async () => {
    await using f = await fresh(2);
    const s = f.store.secrets;
    const p = f.store.policies;
    const b = f.store.backend;
    const inStep = async (writes: number) => {
      // PostgreSQL folds the writes it logged at checkpoints.
      await f.store.fold();
      const snapshot = await b.readIntegrity();
      assert.ok(snapshot.row, "an integrity row");
      assert.equal(snapshot.row.generation, writes);
      const rebuilt = new IntegrityLedger(
        f.store.integrityKey,
        f.keys.storeId,
        snapshot,
        snapshot.row.epoch,
      );
      assert.equal(rebuilt.mismatch(snapshot.row), undefined);
      assert.deepEqual(f.store.ledger!.row, snapshot.row);
    };
    await inStep(0);
    for (let i = 0; i < 3; i++) await s.put("a", { k: `${i}` });
    await s.delete("a", [3]);
    await s.undelete("a", [3]);
    await p.putPolicy({
      name: "x",
      spiffeIdPattern: "spiffe://spike\\.ist/x",
      pathPattern: "a",
      permissions: ["read"],
    });
    await p.deletePolicy("x");
    await inStep(7);
    // Refused writes change nothing: a stale revision, an existing version
    // row, side by side with writes that land.
    const head = (await b.readSecret("a"))!.head;
    const record = new Uint8Array([1, 2, 3]);
    const outcomes = await Promise.allSettled([
      s.put("b", { k: "1" }),
      b.writeSecret("a", 1, { head }),
      b.writeSecret("a", 5, { head, insert: { version: 2, record } }),
      s.put("c", { k: "1" }),
    ]);
    assert.deepEqual(outcomes.map((o) => o.status), [
      "fulfilled",
      "fulfilled",
      "rejected",
      "fulfilled",
    ]);
    await inStep(9);
  });

  Deno.test(`${kind}: a rekey keeps the integrity key: the digest, checkpoints and audit anchors made before verify after it`, async () => {
    await using f = await fresh(2);
    const s = f.store.secrets;
    await s.put("a", { k: "1" });
    await f.store.fold();
    const before = f.store.signCheckpoint()!;
    const hash = new Uint8Array(32).fill(7);
    await f.store.anchorAudit({ seq: 7, hash }, "");
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
    await s.put("a", { k: "2" });
    await window.commit();
    await s.put("a", { k: "3" });
    await f.store.fold();
    assert.ok(f.store.verifyCheckpoint(before));
    assert.deepEqual(await f.store.auditAnchor(""), { seq: 7, hash });
    if (!f.dataDir) return;
    // Unlocked with the new root key only, the store is not held.
    const other = await openStore({
      backend: "sqlite",
      dataDir: f.dataDir,
      maxVersions: 2,
    });
    try {
      await other.unlock(next);
      assert.equal(other.hold, undefined);
      assert.ok(other.verifyCheckpoint(before));
      assert.deepEqual(await other.auditAnchor(""), { seq: 7, hash });
      assert.deepEqual(await other.secrets.get("a"), { k: "3" });
    } finally {
      await other.close();
    }
  });
}
