// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import {
  type ByteReader,
  HiddenLine,
  MAX_SHARD_INPUT,
  normalizeShardText,
  parseShardInput,
  readPipedInput,
  shardTextIncomplete,
} from "../modes/pilot/shard_input.ts";
import { CliError } from "../modes/pilot/cli_error.ts";

const encode = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);
const HEX = "0f".repeat(32);

/** A reader that hands out `data` in chunks of `size` bytes. */
function chunked(data: Uint8Array, size: number): ByteReader {
  let at = 0;
  return {
    read(p) {
      if (at >= data.length) return Promise.resolve(null);
      const n = Math.min(size, p.length, data.length - at);
      p.set(data.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
}

Deno.test("a hidden line ends at Enter and keeps what was typed", () => {
  const line = new HiddenLine();
  assert.equal(line.feed(encode("spike:1:")), "more");
  assert.equal(line.feed(encode(`${HEX}\rignored`)), "done");
  assert.equal(decode(line.bytes()), `spike:1:${HEX}`);
  line.clear();
  assert.equal(line.bytes().length, 0);
});

Deno.test("a hidden line handles Backspace, Ctrl-U and control bytes", () => {
  const line = new HiddenLine();
  line.feed(encode("abx\x7f\x08c"));
  assert.equal(decode(line.bytes()), "ac");
  line.feed(encode("\x15spike\x1b\t:"));
  assert.equal(decode(line.bytes()), "spike:");
  line.feed(new Uint8Array([0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f]));
  assert.equal(line.bytes().length, 0);
});

Deno.test("a hidden line is cancelled by Ctrl-C and ended by Ctrl-D", () => {
  assert.equal(new HiddenLine().feed(encode("spi\x03ke")), "cancel");
  const line = new HiddenLine();
  assert.equal(line.feed(encode("ab\x04")), "done");
  assert.equal(decode(line.bytes()), "ab");
});

Deno.test("a hidden line refuses more than its capacity", () => {
  const line = new HiddenLine(4);
  assert.equal(line.feed(encode("abcd")), "more");
  assert.equal(line.feed(encode("e")), "overflow");
});

Deno.test("piped input is read whole across chunks", async () => {
  const text = `spike:2:${HEX}\n`;
  const bytes = await readPipedInput(chunked(encode(text), 7));
  assert.equal(decode(bytes), text);
});

Deno.test("piped input over 4096 bytes is refused with exit code 2", async () => {
  const exact = await readPipedInput(
    chunked(new Uint8Array(MAX_SHARD_INPUT), 1000),
  );
  assert.equal(exact.length, MAX_SHARD_INPUT);
  await assert.rejects(
    () => readPipedInput(chunked(new Uint8Array(MAX_SHARD_INPUT + 1), 1000)),
    (e: unknown) => {
      assert.ok(e instanceof CliError);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, /longer than 4096 bytes/);
      return true;
    },
  );
});

Deno.test("shard input is parsed with surrounding blanks trimmed", () => {
  const shard = parseShardInput(encode(`  spike:3:${HEX}\r\n`));
  assert.equal(shard.index, 3);
  assert.deepEqual(shard.value, new Uint8Array(32).fill(0x0f));
});

Deno.test("wrong shard input is a usage error that never echoes the input", () => {
  const secretish = "de".repeat(31);
  for (
    const text of [
      "",
      `spike:1:${secretish}`,
      `spike:0:${HEX}`,
      `spike:1 2:${HEX}`,
      `spike:1:${HEX.slice(0, 30)}-${HEX.slice(31)}`,
      `nope:1:${HEX}`,
      `spike:1:${HEX}:extra`,
      `spike:x:${HEX}`,
    ]
  ) {
    assert.throws(() => parseShardInput(encode(text)), (e: unknown) => {
      assert.ok(e instanceof CliError);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, /^Invalid recovery shard: /);
      assert.ok(!e.message.includes(secretish));
      assert.ok(!e.message.includes("0f0f"));
      return true;
    }, text);
  }
});

Deno.test("a shard wrapped over lines, in uppercase or with SPIKE: is the same shard", () => {
  const value = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 160);
  const hex = value.toHex();
  const canonical = parseShardInput(encode(`spike:2:${hex}`));
  for (
    const text of [
      `spike:2:${hex.toUpperCase()}`,
      `SPIKE:2:${hex}`,
      `spike:2:${hex.slice(0, 40)}\n${hex.slice(40)}\n`,
      `spike:2:\r\n${hex.slice(0, 32)}\r\n  ${hex.slice(32).toUpperCase()}`,
      `  spike:2:${hex.slice(0, 16)} ${hex.slice(16, 48)}\t${hex.slice(48)}  `,
    ]
  ) {
    const shard = parseShardInput(encode(text));
    assert.equal(shard.index, canonical.index, text);
    assert.deepEqual(shard.value, canonical.value, text);
  }
  assert.deepEqual(canonical.value, value);
  // Blanks are dropped only from the hex: a wrapped index is refused, not
  // read as another shard.
  assert.throws(() => parseShardInput(encode(`spike:1\n2:${hex}`)), CliError);
  assert.deepEqual(
    normalizeShardText(
      encode(`Spike:12:${hex.slice(0, 10)}\n${hex.slice(10)}`),
    ),
    encode(`spike:12:${hex}`),
  );
});

Deno.test("a hidden line goes on after Enter while a pasted shard is incomplete", () => {
  const line = new HiddenLine();
  assert.equal(line.feed(encode(`spike:1:${HEX.slice(0, 40)}\r\n`)), "more");
  assert.equal(line.feed(encode(`${HEX.slice(40)}\r`)), "done");
  assert.equal(decode(line.bytes()), `spike:1:${HEX}`);
  // Enter twice ends an incomplete line: the parser then says what is short.
  const short = new HiddenLine();
  assert.equal(short.feed(encode("spike:1:abcd\r")), "more");
  assert.equal(short.feed(encode("\r")), "done");
  // Anything that is not a shard's start ends at the first Enter.
  assert.equal(new HiddenLine().feed(encode("hello\r")), "done");
  assert.ok(shardTextIncomplete(encode("spike:1:")));
  assert.ok(!shardTextIncomplete(encode(`spike:1:${HEX}`)));
});
