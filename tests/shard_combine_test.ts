// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { combineShards } from "../lib/shard/combine.ts";
import {
  shardFromLibraryFormat,
  shardToLibraryFormat,
} from "../lib/shard/library_format.ts";
import type { Shard } from "../lib/shard/shard.ts";
import { ShardError } from "../lib/shard/shard_error.ts";
import { splitRootKey } from "../lib/shard/split.ts";

function randomKey(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(32));
}

Deno.test("combineShards reconstructs the key from any t shards", async () => {
  const key = randomKey();
  const shards = await splitRootKey(key, 5, 3);
  assert.deepEqual(await combineShards(shards.slice(0, 3)), key);
  assert.deepEqual(
    await combineShards([shards[4]!, shards[0]!, shards[2]!]),
    key,
  );
});

Deno.test("combineShards leaves the shards unchanged", async () => {
  const shards = await splitRootKey(randomKey(), 3, 2);
  const copies = shards.map((s) => ({
    index: s.index,
    value: new Uint8Array(s.value),
  }));
  await combineShards(shards);
  assert.deepEqual(shards, copies);
});

Deno.test("combineShards rejects a duplicate shard index", async () => {
  const shards = await splitRootKey(randomKey(), 3, 2);
  await assert.rejects(
    combineShards([shards[0]!, shards[1]!, {
      index: 1,
      value: shards[2]!.value,
    }]),
    { name: "ShardError", message: "Duplicate shard index 1" },
  );
});

Deno.test("combineShards rejects fewer than two shards", async () => {
  const [one] = await splitRootKey(randomKey(), 3, 2);
  await assert.rejects(combineShards([]), /At least 2 shards/);
  await assert.rejects(combineShards([one!]), /At least 2 shards/);
  await assert.rejects(
    combineShards([], { allowThresholdOne: true }),
    /At least 2 shards/,
  );
});

Deno.test("combineShards with threshold one returns a copy of the single shard", async () => {
  const key = randomKey();
  const [one, two] = await splitRootKey(key, 2, 1, { allowThresholdOne: true });
  const got = await combineShards([one!], { allowThresholdOne: true });
  assert.deepEqual(got, key);
  assert.notEqual(got, one!.value);
  assert.deepEqual(await combineShards([one!, two!]), key);
});

Deno.test("combineShards rejects malformed shards", async () => {
  const [a, b] = await splitRootKey(randomKey(), 2, 2);
  const bad: Shard[] = [
    { index: 0, value: new Uint8Array(32) },
    { index: 256, value: new Uint8Array(32) },
    { index: -1, value: new Uint8Array(32) },
    { index: 1.5, value: new Uint8Array(32) },
    { index: 3, value: new Uint8Array(31) },
    { index: 3, value: new Uint8Array(33) },
  ];
  for (const shard of bad) {
    await assert.rejects(combineShards([a!, shard]), ShardError);
    await assert.rejects(combineShards([shard, b!]), ShardError);
  }
});

Deno.test("the library format is the value bytes followed by the index", async () => {
  const [, second] = await splitRootKey(randomKey(), 2, 2);
  const encoded = shardToLibraryFormat(second!);
  assert.equal(encoded.length, 33);
  assert.deepEqual(encoded.subarray(0, 32), second!.value);
  assert.equal(encoded[32], 2);
  const decoded = shardFromLibraryFormat(encoded);
  assert.deepEqual(decoded, second);
  encoded.fill(0);
  assert.deepEqual(decoded.value, second!.value, "decoding copies the value");
});

Deno.test("the library format decoder rejects wrong lengths and x = 0", () => {
  assert.throws(
    () => shardFromLibraryFormat(new Uint8Array(32)),
    /33 bytes, got 32/,
  );
  assert.throws(
    () => shardFromLibraryFormat(new Uint8Array(34)),
    /33 bytes, got 34/,
  );
  assert.throws(
    () => shardFromLibraryFormat(new Uint8Array(33)),
    /x coordinate 0/,
  );
  assert.throws(
    () => shardToLibraryFormat({ index: 0, value: new Uint8Array(32) }),
    ShardError,
  );
});
