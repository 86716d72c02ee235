// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { combine } from "shamir-secret-sharing";
import { hkdf } from "../lib/crypto/kdf.ts";
import { combineShards } from "../lib/shard/combine.ts";
import { gfMul } from "../lib/shard/gf256.ts";
import { shardToLibraryFormat } from "../lib/shard/library_format.ts";
import type { Shard } from "../lib/shard/shard.ts";
import { ShardError } from "../lib/shard/shard_error.ts";
import { splitRootKey } from "../lib/shard/split.ts";

function randomKey(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(32));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Every k-element subset of `items`, in lexicographic order. */
function subsets<T>(items: readonly T[], k: number): T[][] {
  if (k === 0) return [[]];
  const out: T[][] = [];
  for (let i = 0; i <= items.length - k; i++) {
    for (const rest of subsets(items.slice(i + 1), k - 1)) {
      out.push([items[i]!, ...rest]);
    }
  }
  return out;
}

function libraryCombine(shards: readonly Shard[]): Promise<Uint8Array> {
  return combine(shards.map(shardToLibraryFormat));
}

Deno.test("GF(2^8) multiplication uses the AES polynomial 0x11b", () => {
  // FIPS-197 §4.2: {57}·{83} = {c1}; {53} and {ca} are inverses.
  assert.equal(gfMul(0x57, 0x83), 0xc1);
  assert.equal(gfMul(0x53, 0xca), 0x01);
  assert.equal(gfMul(0x80, 0x02), 0x1b);
  for (let a = 0; a < 256; a++) {
    assert.equal(gfMul(a, 1), a);
    assert.equal(gfMul(a, 0), 0);
    assert.equal(gfMul(a, 7), gfMul(7, a));
  }
});

Deno.test("every t-subset of the shares of random keys gives the key through the library's combine", async () => {
  const shapes: [number, number][] = [[3, 2], [5, 3], [7, 4], [4, 4], [6, 2]];
  for (let k = 0; k < 20; k++) {
    const key = randomKey();
    for (const [n, t] of shapes) {
      const shards = await splitRootKey(key, n, t);
      assert.deepEqual(
        shards.map((s) => s.index),
        [...Array(n)].map((_, i) => i + 1),
      );
      for (const subset of subsets(shards, t)) {
        assert.deepEqual(await libraryCombine(subset), key, `n=${n} t=${t}`);
        // Order must not matter either.
        assert.deepEqual(await libraryCombine(subset.toReversed()), key);
      }
    }
  }
});

Deno.test("more than t shares also give the key", async () => {
  const key = randomKey();
  const shards = await splitRootKey(key, 9, 3);
  assert.deepEqual(await libraryCombine(shards), key);
  assert.deepEqual(await combineShards(shards.slice(2, 7)), key);
});

Deno.test("t-1 shares do not give the key", async () => {
  for (let k = 0; k < 20; k++) {
    const key = randomKey();
    for (const [n, t] of [[5, 3], [7, 4], [6, 6]] as const) {
      const shards = await splitRootKey(key, n, t);
      for (const subset of subsets(shards, t - 1)) {
        assert.notDeepEqual(await libraryCombine(subset), key);
      }
    }
  }
});

Deno.test("the largest split, 255 shares with threshold 255, round-trips", async () => {
  const key = randomKey();
  const shards = await splitRootKey(key, 255, 255);
  assert.equal(shards.length, 255);
  assert.equal(shards[254]!.index, 255);
  assert.deepEqual(await libraryCombine(shards), key);
  assert.notDeepEqual(await libraryCombine(shards.slice(1)), key);
});

Deno.test("splitting the same key twice gives identical shares", async () => {
  const key = randomKey();
  for (const [n, t] of [[3, 2], [5, 3], [7, 4]] as const) {
    assert.deepEqual(
      await splitRootKey(key, n, t),
      await splitRootKey(key, n, t),
    );
  }
});

Deno.test("share i does not depend on the share count", async () => {
  const key = randomKey();
  const three = await splitRootKey(key, 3, 3);
  const seven = await splitRootKey(key, 7, 3);
  assert.deepEqual(seven.slice(0, 3), three);
});

Deno.test("different keys give different shares", async () => {
  const a = await splitRootKey(randomKey(), 5, 3);
  const b = await splitRootKey(randomKey(), 5, 3);
  for (let i = 0; i < 5; i++) {
    assert.notDeepEqual(a[i]!.value, b[i]!.value);
  }
});

Deno.test("different thresholds give different polynomials", async () => {
  const key = randomKey();
  const t2 = await splitRootKey(key, 3, 2);
  const t3 = await splitRootKey(key, 3, 3);
  for (let i = 0; i < 3; i++) assert.notDeepEqual(t2[i]!.value, t3[i]!.value);
});

Deno.test("no share equals the key or another share", async () => {
  const key = randomKey();
  const shards = await splitRootKey(key, 10, 4);
  const seen = new Set([hex(key)]);
  for (const s of shards) {
    assert.equal(seen.has(hex(s.value)), false);
    seen.add(hex(s.value));
  }
});

Deno.test("the coefficients are HKDF of the root key with the documented info", async () => {
  // Recovery files must stay valid across releases, so the derivation is
  // pinned: for t = 2, share 1 = key XOR c1 with
  // c1 = HKDF-SHA256(key, salt = "", "spike/v1/shard-coefficients/t=2").
  const key = randomKey();
  const c1 = await hkdf(
    new Uint8Array(key),
    new Uint8Array(0),
    "spike/v1/shard-coefficients/t=2",
    32,
  );
  const [one, two] = await splitRootKey(key, 2, 2);
  assert.deepEqual(one!.value, key.map((b, i) => b ^ c1[i]!));
  assert.deepEqual(two!.value, key.map((b, i) => b ^ gfMul(c1[i]!, 2)));
});

Deno.test("the split of a fixed key matches the recorded shares", async () => {
  const key = new Uint8Array(32).map((_, i) => i + 1);
  const shards = await splitRootKey(key, 3, 2);
  assert.deepEqual(shards.map((s) => hex(s.value)), [
    "0f99f71da8c3f54b8eece5a3b7eef1c08730e004f073a1ce33103a48bd027a29",
    "1d2ff0364497f88e1cddcc4962d5e8ab2656ee34c4dc60af4d0e59b44626d532",
    "13b4042fe9520acd9b3b22e6d835167bb0741d2421b9d679670478e0e63ab03b",
  ]);
});

Deno.test("split leaves the root key unchanged", async () => {
  const key = randomKey();
  const copy = new Uint8Array(key);
  await splitRootKey(key, 5, 3);
  assert.deepEqual(key, copy);
});

Deno.test("split refuses threshold 1 unless allowed, and then every share is the key", async () => {
  const key = randomKey();
  await assert.rejects(splitRootKey(key, 3, 1), ShardError);
  const shards = await splitRootKey(key, 3, 1, { allowThresholdOne: true });
  for (const s of shards) assert.deepEqual(s.value, key);
  assert.notEqual(shards[0]!.value, shards[1]!.value);
});

Deno.test("split rejects bad parameters", async () => {
  const key = randomKey();
  for (const [n, t] of [[0, 0], [2, 3], [256, 2], [3, 0], [3.5, 2], [3, NaN]]) {
    await assert.rejects(splitRootKey(key, n!, t!), ShardError);
  }
});

Deno.test("split rejects a root key that is not 32 bytes or is all zeros", async () => {
  await assert.rejects(
    splitRootKey(new Uint8Array(31).fill(1), 3, 2),
    /32 bytes, got 31/,
  );
  await assert.rejects(
    splitRootKey(new Uint8Array(33).fill(1), 3, 2),
    /32 bytes, got 33/,
  );
  await assert.rejects(splitRootKey(new Uint8Array(32), 3, 2), /all zeros/);
});
