// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The store digest and its ledger: the on-disk format computed from its
// description (so every backend can compute it alike), a ledger kept in
// step by writes equal to one built from the same rows, writes undone with
// their transaction, and every disagreement named.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { HmacSha256 } from "../lib/crypto/sha256.ts";
import { IntegrityLedger } from "../modes/nexus/store/integrity_ledger.ts";
import {
  bucketOf,
  DIGEST_BUCKETS,
  type IntegrityRow,
} from "../modes/nexus/store/store_digest.ts";
import type { IntegritySnapshot } from "../modes/nexus/store/backend.ts";

const KEY_BYTES = new Uint8Array(32).fill(1);
const KEY = new HmacSha256(KEY_BYTES);
const STORE_ID = new Uint8Array(16).fill(2);

function snapshot(
  entries: Record<string, number>,
  policyGeneration = 0,
): IntegritySnapshot {
  const paths = Object.keys(entries).sort();
  return {
    paths,
    revisions: paths.map((p) => entries[p]!),
    policyGeneration,
  };
}

const ledger = (s: IntegritySnapshot, epoch = 0) =>
  new IntegrityLedger(KEY, STORE_ID, s, epoch);

Deno.test("the store digest is the documented XOR of bucket and policy-set HMACs", () => {
  // Written out from the description in store_digest.ts, not imported.
  const fnv = (text: string) => {
    let h = 0x811c9dc5;
    for (const b of new TextEncoder().encode(text)) {
      h = Math.imul(h ^ b, 0x01000193);
    }
    return (h >>> 0) % 4096;
  };
  const mac = (message: unknown) =>
    createHmac("sha256", KEY_BYTES).update(JSON.stringify(message)).digest();
  const entries = { "apps/db": 3, "apps/web": 1, "team/x": 7, "ü/é": 2 };
  const byBucket = new Map<number, [string, number][]>();
  for (const [path, revision] of Object.entries(entries).sort()) {
    const list = byBucket.get(fnv(path)) ?? [];
    list.push([path, revision]);
    byBucket.set(fnv(path), list);
  }
  const digest = new Uint8Array(32);
  const xor = (m: Uint8Array) => m.forEach((b, i) => digest[i]! ^= b);
  for (const [bucket, list] of byBucket) {
    xor(mac([
      "spike/v3/bucket",
      bucket,
      list.map((e) => e[0]),
      list.map((e) => e[1]),
    ]));
  }
  xor(mac(["spike/v3/policy-set", 4]));
  const generation = 3 + 1 + 7 + 2 + 4;
  const row = ledger(snapshot(entries, 4), 2).row;
  assert.equal(row.generation, generation);
  assert.equal(row.epoch, 2);
  assert.equal(row.digest.toHex(), digest.toHex());
  assert.equal(
    row.mac.toHex(),
    mac([
      "spike/v3/integrity",
      STORE_ID.toHex(),
      2,
      generation,
      digest.toHex(),
    ]).toString("hex"),
  );
  for (const path of Object.keys(entries)) {
    assert.equal(bucketOf(path), fnv(path), path);
  }
  assert.ok(bucketOf("x".repeat(500)) < DIGEST_BUCKETS);
});

Deno.test("a ledger kept in step by writes equals one built from the rows they leave", () => {
  const l = ledger(snapshot({}));
  const empty = l.row;
  assert.equal(empty.generation, 0);
  assert.equal(empty.digest.toHex(), "00".repeat(32));
  // Each transaction stores one row, replacing the one before; a batch of
  // writes (the last three) seals once.
  const transactions: (() => void)[][] = [
    [() => l.secretWritten("a", 0, 1)],
    [() => l.secretWritten("b", 0, 1)],
    [() => l.secretWritten("a", 1, 2), () => l.policyWritten(0, 1)],
    [
      () => l.secretWritten("c/d", 0, 1),
      () => l.policyWritten(1, 2),
      () => l.secretWritten("a", 2, 3),
    ],
  ];
  let previous: IntegrityRow = empty;
  for (const writes of transactions) {
    for (const write of writes) write();
    const sealed = l.seal()!;
    assert.equal(sealed.replaces.toHex(), previous.mac.toHex());
    assert.equal(sealed.row.generation, previous.generation + writes.length);
    l.commit();
    assert.deepEqual(l.row, sealed.row);
    assert.equal(l.seal(), undefined, "nothing written since the commit");
    previous = sealed.row;
  }
  const built = ledger(snapshot({ a: 3, b: 1, "c/d": 1 }, 2)).row;
  assert.deepEqual(l.row, built);
  assert.equal(l.mismatch(built), undefined);
  assert.equal(l.revisionOf("a"), 3);
  assert.equal(l.revisionOf("nope"), 0);
  assert.equal(l.policyGeneration, 2);
});

Deno.test("writes rolled back with their transaction leave the ledger as before", () => {
  const l = ledger(snapshot({ a: 1 }));
  const before = l.row;
  const committed: number[] = [];
  l.onCommit((row) => committed.push(row.generation));
  const mark = l.mark();
  l.secretWritten("a", 1, 2);
  l.secretWritten("new", 0, 1);
  l.policyWritten(0, 1);
  l.seal();
  // The commit failed: the whole transaction rolls back.
  l.rollbackTo(mark);
  l.commit();
  assert.deepEqual(l.row, before);
  assert.equal(l.revisionOf("new"), 0);
  assert.equal(l.revisionOf("a"), 1);
  assert.deepEqual(committed, [], "nothing written, nothing committed");
  // A batch: the second write's savepoint rolls back, the first commits.
  l.secretWritten("a", 1, 2);
  const second = l.mark();
  l.secretWritten("b", 0, 1);
  l.rollbackTo(second);
  l.seal();
  l.commit();
  assert.deepEqual(committed, [2]);
  assert.deepEqual(l.row, ledger(snapshot({ a: 2 })).row);
});

Deno.test("a commit not yet on disk is not what a checkpoint names until it is synced", () => {
  const l = ledger(snapshot({ a: 1 }));
  const start = l.durableRow;
  const told: number[] = [];
  l.onCommit((row) => told.push(row.generation));
  l.secretWritten("a", 1, 2);
  l.seal();
  l.commit(false);
  const first = l.row;
  l.secretWritten("b", 0, 1);
  l.seal();
  l.commit(false);
  const second = l.row;
  // Both committed, neither synced: the durable row has not moved.
  assert.deepEqual(l.durableRow, start);
  assert.deepEqual(told, []);
  l.synced(first);
  assert.deepEqual(l.durableRow, first);
  l.synced(second);
  // A late report of an older sync never moves the durable row back.
  l.synced(first);
  assert.deepEqual(l.durableRow, second);
  assert.deepEqual(told, [first.generation, second.generation]);
  // A backend whose commit is durable says so at once.
  l.secretWritten("a", 2, 3);
  l.seal();
  l.commit();
  assert.deepEqual(l.durableRow, l.row);
});

Deno.test("a write from a revision the ledger never saw is an integrity error", () => {
  const l = ledger(snapshot({ a: 4 }, 2));
  assert.throws(() => l.secretWritten("a", 3, 4), {
    name: "IntegrityError",
    message:
      /"a" was at revision 3 in the store, but nexus last wrote revision 4/,
  });
  assert.throws(() => l.secretWritten("b", 2, 3), { name: "IntegrityError" });
  assert.throws(() => l.policyWritten(1, 2), {
    name: "IntegrityError",
    message: /generation 1 in the store, but nexus last wrote generation 2/,
  });
  assert.deepEqual(l.row, ledger(snapshot({ a: 4 }, 2)).row);
});

Deno.test("a stored row that does not match the rows is named for what it is", () => {
  const current = ledger(snapshot({ a: 3, b: 2 }, 1)).row;
  // Rows rolled back: a head put back one revision older.
  const rolled = ledger(snapshot({ a: 2, b: 2 }, 1));
  assert.match(
    rolled.mismatch(current)!,
    /add up to 5 writes.*sealed at 6.*rolled back or removed/,
  );
  // A path removed.
  assert.match(
    ledger(snapshot({ a: 3 }, 1)).mismatch(current)!,
    /rolled back or removed/,
  );
  // The same number of writes, other revisions (one older, one bumped).
  assert.match(
    ledger(snapshot({ a: 2, b: 3 }, 1)).mismatch(current)!,
    /differ from what its integrity row seals/,
  );
  // The row itself altered, or from another store.
  const altered = { ...current, generation: current.generation + 1 };
  assert.match(
    ledger(snapshot({ a: 3, b: 2 }, 1)).mismatch(altered)!,
    /does not verify/,
  );
  const other = new IntegrityLedger(
    KEY,
    new Uint8Array(16).fill(9),
    snapshot({ a: 3, b: 2 }, 1),
    0,
  );
  assert.match(other.mismatch(current)!, /does not verify/);
  assert.equal(
    ledger(snapshot({ a: 3, b: 2 }, 1)).mismatch(current),
    undefined,
  );
});

Deno.test("differences name every path whose stored revision is not the one written", () => {
  const l = ledger(snapshot({ a: 3, b: 2, c: 1 }, 1));
  const d = l.differences(snapshot({ a: 2, c: 1, extra: 1 }, 0));
  assert.deepEqual(
    d.paths.sort((x, y) => x.path < y.path ? -1 : 1),
    [
      { path: "a", stored: 2, written: 3 },
      { path: "b", stored: 0, written: 2 },
      { path: "extra", stored: 1, written: 0 },
    ],
  );
  assert.equal(d.policyGeneration, 0);
  assert.deepEqual(l.differences(snapshot({ a: 3, b: 2, c: 1 }, 1)), {
    paths: [],
    policyGeneration: undefined,
  });
});

Deno.test("HMAC-SHA256 matches node:crypto for every length around the block size", () => {
  for (const keyLength of [0, 1, 31, 32, 63, 64, 65, 200]) {
    const key = crypto.getRandomValues(new Uint8Array(keyLength));
    const hmac = new HmacSha256(key);
    for (let n = 0; n < 300; n += n < 70 ? 1 : 37) {
      const message = crypto.getRandomValues(new Uint8Array(n));
      assert.equal(
        hmac.mac(message).toHex(),
        createHmac("sha256", key).update(message).digest("hex"),
        `key ${keyLength} bytes, message ${n} bytes`,
      );
    }
    hmac.clear();
    assert.notEqual(
      hmac.mac(new Uint8Array(1)).toHex(),
      createHmac("sha256", key).update(new Uint8Array(1)).digest("hex"),
      "a cleared key no longer MACs",
    );
  }
});
