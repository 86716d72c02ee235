// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import {
  computeCommitments,
  shardCommitment,
  verifyShard,
} from "../lib/shard/commitment.ts";
import type { Shard } from "../lib/shard/shard.ts";
import { ShardError } from "../lib/shard/shard_error.ts";
import { splitRootKey } from "../lib/shard/split.ts";

const storeId = new TextEncoder().encode("store-id-for-tests");

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function fixture() {
  const shards = await splitRootKey(
    crypto.getRandomValues(new Uint8Array(32)),
    5,
    3,
  );
  return { shards, commitments: await computeCommitments(storeId, shards) };
}

Deno.test("every shard of a split verifies against its commitment", async () => {
  const { shards, commitments } = await fixture();
  assert.equal(commitments.length, 5);
  for (const [i, shard] of shards.entries()) {
    assert.equal(commitments[i]!.length, 32);
    assert.deepEqual(commitments[i], await shardCommitment(storeId, shard));
    assert.equal(await verifyShard(storeId, shard, commitments), true);
  }
});

Deno.test("commitments are placed by shard index, whatever the input order", async () => {
  const { shards, commitments } = await fixture();
  assert.deepEqual(
    await computeCommitments(storeId, shards.toReversed()),
    commitments,
  );
});

Deno.test("a shard with one flipped bit fails verification", async () => {
  const { shards, commitments } = await fixture();
  for (const bit of [0, 7, 100, 255]) {
    const value = new Uint8Array(shards[2]!.value);
    value[bit >> 3]! ^= 1 << (bit & 7);
    assert.equal(
      await verifyShard(storeId, { index: 3, value }, commitments),
      false,
    );
  }
});

Deno.test("a shard presented under another index fails verification", async () => {
  const { shards, commitments } = await fixture();
  const value = shards[0]!.value;
  for (const index of [2, 3, 4, 5]) {
    assert.equal(
      await verifyShard(storeId, { index, value }, commitments),
      false,
    );
  }
});

Deno.test("a shard checked against another store's id fails verification", async () => {
  const { shards, commitments } = await fixture();
  const other = new TextEncoder().encode("store-id-for-tests-2");
  assert.equal(await verifyShard(other, shards[0]!, commitments), false);
  assert.notDeepEqual(await computeCommitments(other, shards), commitments);
});

Deno.test("a shard of another key fails verification", async () => {
  const { commitments } = await fixture();
  const other = await splitRootKey(
    crypto.getRandomValues(new Uint8Array(32)),
    5,
    3,
  );
  for (const shard of other) {
    assert.equal(await verifyShard(storeId, shard, commitments), false);
  }
});

Deno.test("verifyShard returns false for an index out of range or a bad value", async () => {
  const { shards, commitments } = await fixture();
  const value = shards[0]!.value;
  const bad: Shard[] = [
    { index: 0, value },
    { index: 6, value },
    { index: 256, value },
    { index: -1, value },
    { index: 1.5, value },
    { index: NaN, value },
    { index: 1, value: value.subarray(0, 31) },
    { index: 1, value: new Uint8Array(33) },
  ];
  for (const shard of bad) {
    assert.equal(await verifyShard(storeId, shard, commitments), false);
  }
  assert.equal(await verifyShard(storeId, shards[0]!, []), false);
});

Deno.test("commitments are deterministic and match the recorded value", async () => {
  const key = new Uint8Array(32).map((_, i) => i + 1);
  const shards = await splitRootKey(key, 3, 2);
  const commitments = await computeCommitments(storeId, shards);
  assert.deepEqual(await computeCommitments(storeId, shards), commitments);
  assert.equal(
    hex(commitments[0]!),
    "1a3e7b0ad4b870b7f2bfdee91d7ab4f113da9cc821d6077785255586c292ccf0",
  );
});

Deno.test("the commitment is HMAC-SHA256 under the store id of label, index and share", async () => {
  const { shards } = await fixture();
  const shard = shards[3]!;
  const key = await crypto.subtle.importKey(
    "raw",
    storeId,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const label = new TextEncoder().encode("spike/v1/shard-commitment");
  const message = new Uint8Array([...label, shard.index, ...shard.value]);
  const expected = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, message),
  );
  assert.deepEqual(await shardCommitment(storeId, shard), expected);
});

Deno.test("computeCommitments rejects a missing, duplicate or invalid index", async () => {
  const { shards } = await fixture();
  await assert.rejects(
    computeCommitments(storeId, shards.slice(1)),
    /must be 1 to 4, got 5/,
  );
  await assert.rejects(
    computeCommitments(storeId, [shards[0]!, shards[0]!]),
    { name: "ShardError", message: "Duplicate shard index 1" },
  );
  await assert.rejects(
    computeCommitments(storeId, [{ index: 0, value: new Uint8Array(32) }]),
    ShardError,
  );
});

Deno.test("commitments refuse an empty store id", async () => {
  const { shards } = await fixture();
  await assert.rejects(
    shardCommitment(new Uint8Array(0), shards[0]!),
    /Store id must not be empty/,
  );
  await assert.rejects(
    computeCommitments(new Uint8Array(0), shards),
    /Store id/,
  );
});
