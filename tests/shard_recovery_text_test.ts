// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import {
  formatRecoveryText,
  parseRecoveryText,
} from "../lib/shard/recovery_text.ts";
import { ShardError } from "../lib/shard/shard_error.ts";
import { splitRootKey } from "../lib/shard/split.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Every nibble value appears, so hex encoding is exercised fully.
const VALUE = new Uint8Array(32).map((_, i) =>
  (i * 0x11 + 0x0f * (i >> 4)) & 0xff
);
const HEX = hex(VALUE);

/** Asserts a ShardError whose message matches and quotes no share hex. */
function assertParseError(input: string, message: RegExp): void {
  for (const text of [input, encoder.encode(input)]) {
    assert.throws(() => parseRecoveryText(text), (e: unknown) => {
      assert.ok(e instanceof ShardError, `${input}: ${e}`);
      assert.equal(e.name, "ShardError");
      assert.match(e.message, message, input);
      assert.match(e.message, /^[A-Z].*[^.]$/);
      const lower = e.message.toLowerCase();
      for (let i = 0; i + 8 <= HEX.length; i++) {
        assert.equal(lower.includes(HEX.slice(i, i + 8)), false, e.message);
      }
      return true;
    });
  }
}

Deno.test("recovery text has upstream's format", () => {
  const text = formatRecoveryText({ index: 3, value: VALUE });
  assert.equal(decoder.decode(text), `spike:3:${HEX}`);
  assert.equal(HEX, HEX.toLowerCase());
});

Deno.test("recovery text round-trips every index and random shares", async () => {
  const shards = await splitRootKey(
    crypto.getRandomValues(new Uint8Array(32)),
    255,
    2,
  );
  for (const shard of shards) {
    const text = formatRecoveryText(shard);
    assert.deepEqual(parseRecoveryText(text), shard);
    assert.deepEqual(parseRecoveryText(decoder.decode(text)), shard);
  }
});

Deno.test("recovery text round-trips all-zero and all-ones values", () => {
  for (const fill of [0x00, 0xff, 0x0a, 0xa0]) {
    const shard = { index: 9, value: new Uint8Array(32).fill(fill) };
    assert.deepEqual(parseRecoveryText(formatRecoveryText(shard)), shard);
  }
});

Deno.test("recovery text parsing trims surrounding whitespace only", () => {
  const expected = { index: 12, value: VALUE };
  for (
    const text of [
      `spike:12:${HEX}\n`,
      `  spike:12:${HEX}\r\n`,
      `\t\nspike:12:${HEX} `,
    ]
  ) {
    assert.deepEqual(parseRecoveryText(text), expected);
    assert.deepEqual(parseRecoveryText(encoder.encode(text)), expected);
  }
  assertParseError(`spike:12: ${HEX}`, /64 hex characters, got 65/);
  assertParseError(
    `spike:12:${HEX.slice(0, 32)} ${HEX.slice(32)}`,
    /64 hex characters, got 65/,
  );
});

Deno.test("recovery text parsing leaves the input bytes unchanged", () => {
  const input = encoder.encode(`spike:1:${HEX}\n`);
  const copy = new Uint8Array(input);
  parseRecoveryText(input);
  assert.deepEqual(input, copy);
});

Deno.test("recovery text parsing rejects a wrong prefix", () => {
  for (
    const prefix of ["SPIKE:", "Spike:", "spkie:", "spike;", "spike1:", "x:"]
  ) {
    assertParseError(`${prefix}1:${HEX}`, /must start with "spike:"/);
  }
  assertParseError(`1:${HEX}`, /must start with "spike:"/);
  assertParseError(HEX, /must start with "spike:"/);
});

Deno.test("recovery text parsing rejects an index out of 1..255", () => {
  for (const index of ["0", "256", "999", "1000", "99999999999999999999"]) {
    assertParseError(`spike:${index}:${HEX}`, /index must be from 1 to 255/);
  }
});

Deno.test("recovery text parsing rejects a signed, padded or non-decimal index", () => {
  for (const index of ["-1", "+1", " 1", "1 ", "0x1", "1.0", "1e2", "a", "١"]) {
    assertParseError(
      `spike:${index}:${HEX}`,
      /decimal number without sign or spaces/,
    );
  }
  for (const index of ["01", "001", "00"]) {
    assertParseError(`spike:${index}:${HEX}`, /leading zeros/);
  }
});

Deno.test("recovery text parsing rejects missing parts", () => {
  assertParseError("", /is empty/);
  assertParseError(" \n", /is empty/);
  assertParseError("spike", /must start with "spike:"/);
  assertParseError("spike:", /missing parts/);
  assertParseError("spike:1", /missing parts/);
  assertParseError(`spike:${HEX}`, /missing parts/);
  assertParseError(`spike::${HEX}`, /index is missing/);
  assertParseError("spike:1:", /64 hex characters, got 0/);
});

Deno.test("recovery text parsing rejects an extra colon", () => {
  assertParseError(`spike:1:${HEX}:`, /too many parts/);
  assertParseError(`spike:1::${HEX}`, /too many parts/);
  assertParseError(`spike:1:2:${HEX}`, /too many parts/);
  assertParseError(
    `spike:1:${HEX.slice(0, 32)}:${HEX.slice(32)}`,
    /too many parts/,
  );
});

Deno.test("recovery text parsing rejects a share of the wrong length", () => {
  assertParseError(`spike:1:${HEX.slice(0, 63)}`, /64 hex characters, got 63/);
  assertParseError(`spike:1:${HEX}0`, /64 hex characters, got 65/);
  assertParseError(`spike:1:${HEX}${HEX}`, /64 hex characters, got 128/);
});

Deno.test("recovery text parsing rejects uppercase hex", () => {
  assertParseError(`spike:1:${HEX.toUpperCase()}`, /must be lowercase/);
  assertParseError(`spike:1:${HEX.slice(0, 63)}F`, /must be lowercase/);
});

Deno.test("recovery text parsing rejects non-hex characters", () => {
  for (const bad of ["g", "G", "z", " ", "-", "/", "@", "`", "\0"]) {
    assertParseError(`spike:1:${bad}${HEX.slice(1)}`, /non-hex character/);
    assertParseError(
      `spike:1:${HEX.slice(0, 40)}${bad}${HEX.slice(41)}`,
      /non-hex character/,
    );
  }
  // Uppercase plus a non-hex character is reported as non-hex.
  assertParseError(
    `spike:1:${HEX.slice(0, 62).toUpperCase()}zz`,
    /non-hex character/,
  );
});

Deno.test("formatting refuses an invalid shard", () => {
  assert.throws(
    () => formatRecoveryText({ index: 0, value: VALUE }),
    ShardError,
  );
  assert.throws(
    () => formatRecoveryText({ index: 256, value: VALUE }),
    ShardError,
  );
  assert.throws(
    () => formatRecoveryText({ index: 1, value: VALUE.subarray(1) }),
    ShardError,
  );
});
