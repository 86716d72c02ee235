// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { zero } from "../lib/crypto/zero.ts";

Deno.test("zero clears typed arrays, node Buffers and only a view's own range", () => {
  const plain = new Uint8Array([1, 2, 3]);
  const buffer = Buffer.from([4, 5, 6]);
  const backing = new Uint8Array([7, 8, 9, 10]);
  zero(plain, undefined, buffer, backing.subarray(1, 3));
  assert.deepEqual([...plain], [0, 0, 0]);
  assert.deepEqual([...buffer], [0, 0, 0]);
  assert.deepEqual([...backing], [7, 0, 0, 10]);
});
