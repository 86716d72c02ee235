// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { validateShamirParams } from "../lib/shard/shamir_params.ts";
import { ShardError } from "../lib/shard/shard_error.ts";

Deno.test("Shamir params accept 2 <= t <= n <= 255", () => {
  for (
    const [n, t] of [[2, 2], [3, 2], [5, 3], [255, 2], [255, 255]] as const
  ) {
    validateShamirParams(n, t);
  }
});

Deno.test("Shamir params refuse threshold 1 unless allowed", () => {
  assert.throws(() => validateShamirParams(3, 1), {
    name: "ShardError",
    message: /threshold 1/,
  });
  validateShamirParams(3, 1, true);
  validateShamirParams(1, 1, true);
});

Deno.test("Shamir params reject each broken rule with its own message", () => {
  const cases: [number, number, RegExp][] = [
    [0, 1, /shares must be from 1 to 255, got 0/],
    [256, 2, /shares must be from 1 to 255, got 256/],
    [-3, 2, /shares must be from 1 to 255/],
    [3, 0, /threshold must be at least 1, got 0/],
    [3, -1, /threshold must be at least 1/],
    [3, 4, /threshold \(4\) cannot exceed shares \(3\)/],
    [2.5, 2, /must be integers/],
    [3, 2.5, /must be integers/],
    [NaN, 2, /must be integers/],
    [3, Infinity, /must be integers/],
  ];
  for (const [n, t, message] of cases) {
    assert.throws(() => validateShamirParams(n, t, true), (e: unknown) => {
      assert.ok(e instanceof ShardError);
      assert.equal(e.name, "ShardError");
      assert.match(e.message, message);
      assert.match(e.message, /^[A-Z].*[^.]$/);
      return true;
    });
  }
});
