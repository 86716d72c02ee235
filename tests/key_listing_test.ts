// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Keyset listing over a caller's scope: which ranges are read, in what
// order, and what cursor comes back.
import assert from "node:assert/strict";
import type { KeyRange } from "../modes/nexus/store/backend.ts";
import {
  keysInRange,
  listKeys,
  narrowPrefixes,
} from "../modes/nexus/store/key_listing.ts";

Deno.test("scope prefixes narrow to disjoint sorted ranges within the prefix", () => {
  assert.deepEqual(narrowPrefixes(["b/", "a/", "a/x/"], ""), ["a/", "b/"]);
  assert.deepEqual(narrowPrefixes(["a/", "b/"], "a/x"), ["a/x"]);
  assert.deepEqual(narrowPrefixes(["a/x/", "a/y", "b/"], "a/"), [
    "a/x/",
    "a/y",
  ]);
  assert.deepEqual(narrowPrefixes([""], "q"), ["q"]);
  assert.deepEqual(narrowPrefixes(["a/"], "b"), []);
  assert.deepEqual(narrowPrefixes([], ""), []);
});

Deno.test("a scoped listing reads only its prefixes' ranges, not the whole table", async () => {
  const table: string[] = [];
  for (let i = 0; i < 5000; i++) {
    table.push(
      `t/${String(i % 50).padStart(2, "0")}/s${String(i).padStart(4, "0")}`,
    );
  }
  table.sort();
  let rowsRead = 0;
  const read = (range: KeyRange) => {
    const rows = keysInRange(table, range);
    rowsRead += rows.length;
    return Promise.resolve(rows);
  };
  const scope = {
    prefixes: ["t/07/", "t/42/"],
    allows: (k: string) => !k.endsWith("0"),
  };
  const seen: string[] = [];
  let after = "";
  for (;;) {
    const page = await listKeys(read, { prefix: "", after, limit: 30 }, scope);
    seen.push(...page.keys);
    if (page.next === undefined) break;
    assert.equal(page.next, page.keys.at(-1));
    after = page.next;
  }
  const expected = table.filter((k) =>
    (k.startsWith("t/07/") || k.startsWith("t/42/")) && !k.endsWith("0")
  );
  assert.deepEqual(seen, expected);
  // Two ranges of 100 keys each (plus the look-ahead of each page).
  assert.ok(rowsRead < 600, `read ${rowsRead} of ${table.length} rows`);
});

Deno.test("a cursor never names a key the scope hides", async () => {
  const table = ["a/1", "a/2", "a/3", "a/4"];
  const read = (range: KeyRange) => Promise.resolve(keysInRange(table, range));
  const scope = { prefixes: ["a/"], allows: (k: string) => k !== "a/2" };
  const page = await listKeys(read, { prefix: "", after: "", limit: 1 }, scope);
  assert.deepEqual(page, { keys: ["a/1"], next: "a/1" });
  const second = await listKeys(
    read,
    { prefix: "", after: "a/1", limit: 1 },
    scope,
  );
  assert.deepEqual(second, { keys: ["a/3"], next: "a/3" });
});

Deno.test("keysInRange reads a sorted array by keyset", () => {
  const keys = ["a", "a/1", "a/2", "b"];
  assert.deepEqual(keysInRange(keys, {}), keys);
  assert.deepEqual(keysInRange(keys, { prefix: "a/" }), ["a/1", "a/2"]);
  assert.deepEqual(keysInRange(keys, { after: "a/1", limit: 2 }), ["a/2", "b"]);
  assert.deepEqual(keysInRange(keys, { prefix: "a/", after: "0" }), [
    "a/1",
    "a/2",
  ]);
  assert.deepEqual(keysInRange(keys, { after: "b" }), []);
});
