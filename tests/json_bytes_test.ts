// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import {
  JsonBytesError,
  JsonBytesWriter,
  parseJsonBytes,
  takeShardArray,
} from "../lib/wire/json_bytes.ts";

const encoder = new TextEncoder();
const bytesOf = (text: string) => encoder.encode(text);

// Inputs where a hand-written reader is most likely to part from JSON.parse.
const TRICKY = [
  '"plain"',
  '""',
  '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
  '"\\u0000\\u001f\\u007f\\u00e9\\uFFFF"',
  '"\\ud83d\\ude00 and \u{1F600}"',
  '"\\ud800 lone high"',
  '"lone low \\udc00"',
  '"\u2028\u2029 raw separators"',
  '"\\u2028 escaped separator"',
  '"\uFEFF leading BOM"',
  '"\\uFEFF escaped BOM"',
  '"caf\u00e9 \u4e2d\u6587"',
  "0",
  "-0",
  "-0.0",
  "123",
  "-123",
  "0.5",
  "1e1",
  "10.0",
  "1E+2",
  "2.5e-3",
  "1e400",
  "-1e400",
  "1e-400",
  "123456789012345",
  "-12345678901234",
  "1234567890123456",
  "12345678901234567890",
  "9007199254740993",
  "true",
  "false",
  "null",
  "[]",
  "{}",
  '[1,[2,[3,[4,{"a":[{}]}]]]]',
  '{"a":{"b":{"c":[null,true,false,"x"]}}}',
  '{"__proto__":{"x":1},"constructor":2}',
  '{"":0}',
  ' \t\r\n{ "a" : [ 1 , 2 ] , "b" : "c" } \n',
  '{"\uFEFFkey":"\uFEFFvalue"}',
];

// Inputs both readers must refuse.
const INVALID = [
  "",
  " ",
  "[1,]",
  '{"a":1,}',
  "01",
  "-01",
  "1.",
  ".5",
  "+1",
  "-",
  "1e",
  "1e+",
  "0x10",
  "NaN",
  "Infinity",
  "nul",
  "tru",
  "[1 2]",
  '{"a" 1}',
  "{a:1}",
  "'a'",
  '"unterminated',
  '"\\x"',
  '"\\u12"',
  '"\\u12G4"',
  '"tab\there"',
  '"line\nbreak"',
  "1 2",
  "[] x",
  "\uFEFF{}",
  "[",
  '{"a":',
];

Deno.test("parseJsonBytes reads tricky JSON exactly as JSON.parse does", () => {
  for (const text of TRICKY) {
    assert.deepStrictEqual(
      parseJsonBytes(bytesOf(text)),
      JSON.parse(text),
      `for ${JSON.stringify(text)}`,
    );
  }
});

Deno.test("parseJsonBytes refuses what JSON.parse refuses", () => {
  for (const text of INVALID) {
    assert.throws(() => JSON.parse(text), SyntaxError, `JSON.parse ${text}`);
    assert.throws(
      () => parseJsonBytes(bytesOf(text)),
      JsonBytesError,
      `for ${JSON.stringify(text)}`,
    );
  }
});

Deno.test("parseJsonBytes keeps a leading BOM in keys and values", () => {
  const text = '{"path":"\uFEFFapps/db","\uFEFFkey":"\uFEFF"}';
  const raw = bytesOf(text);
  // The BOM is raw UTF-8 in the body, not an escape.
  assert.deepEqual([...raw.subarray(9, 12)], [0xef, 0xbb, 0xbf]);
  const value = parseJsonBytes(raw) as Record<string, string>;
  assert.equal(value.path, "\uFEFFapps/db");
  assert.equal(value["\uFEFFkey"], "\uFEFF");
  assert.equal(value["key"], undefined);
  assert.deepStrictEqual(value, JSON.parse(text));
});

Deno.test("parseJsonBytes refuses a duplicate object key", () => {
  assert.throws(
    () => parseJsonBytes(bytesOf('{"path":"a","path":"b"}')),
    /duplicate object key/,
  );
  // Same key once written plainly and once escaped.
  assert.throws(
    () => parseJsonBytes(bytesOf('{"a":1,"\\u0061":2}')),
    /duplicate object key/,
  );
  assert.throws(
    () => parseJsonBytes(bytesOf('{"a":{"b":1,"b":1}}')),
    /duplicate object key/,
  );
  assert.deepEqual(parseJsonBytes(bytesOf('{"a":{"b":1},"b":1}')), {
    a: { b: 1 },
    b: 1,
  });
});

Deno.test("parseJsonBytes accepts 32 levels of nesting and refuses 33", () => {
  for (const [open, close, empty] of [["[", "]", "[]"], ['{"k":', "}", "{}"]]) {
    // n levels of containers, the innermost empty or holding a scalar.
    const nest = (n: number) =>
      bytesOf(open!.repeat(n - 1) + empty! + close!.repeat(n - 1));
    const holding = (n: number) =>
      bytesOf(open!.repeat(n) + "1" + close!.repeat(n));
    parseJsonBytes(nest(32));
    parseJsonBytes(holding(32));
    assert.throws(() => parseJsonBytes(nest(33)), /nesting too deep/);
    assert.throws(() => parseJsonBytes(holding(33)), /nesting too deep/);
  }
  assert.throws(
    () => parseJsonBytes(bytesOf("[".repeat(100_000))),
    /nesting too deep/,
  );
});

Deno.test("parseJsonBytes refuses invalid UTF-8 in strings", () => {
  const cases = [
    [0xc3, 0x28], // bad continuation
    [0xc0, 0x80], // overlong NUL
    [0xe0, 0x80, 0xaf], // overlong slash
    [0xed, 0xa0, 0x80], // UTF-8 encoded surrogate
    [0x80], // lone continuation
    [0xf5, 0x80, 0x80, 0x80], // beyond U+10FFFF
    [0xff],
    [0xe2, 0x82], // truncated sequence
  ];
  for (const bad of cases) {
    for (const [before, after] of [['"', '"'], ['{"', '":1}']]) {
      const body = new Uint8Array([
        ...bytesOf(before!),
        ...bad,
        ...bytesOf(after!),
      ]);
      assert.throws(
        () => parseJsonBytes(body),
        /invalid UTF-8/,
        `for ${bad} in ${before}`,
      );
    }
  }
  // Escapes remain fine.
  assert.equal(parseJsonBytes(bytesOf('"\\u00e9"')), "\u00e9");
});

Deno.test("parseJsonBytes errors give a position, never content", () => {
  for (const text of ['{"a":"s3cret\\q"}', '[201,"s3cret"', '"s3cret\u0001"']) {
    try {
      parseJsonBytes(bytesOf(text));
      assert.fail("parsed");
    } catch (e) {
      assert.ok(e instanceof JsonBytesError);
      assert.equal(e.name, "JsonBytesError");
      assert.match(e.message, /^Invalid JSON at byte \d+: /);
      assert.ok(!e.message.includes("s3cret"), e.message);
      assert.ok(!e.message.includes("201"), e.message);
    }
  }
});

Deno.test("plainIntegers refuses numbers with a fraction or an exponent", () => {
  for (const text of ["1e1", "10.0", "1E0", "2.5", "0e0", "-0.0", "1e-0"]) {
    assert.throws(
      () => parseJsonBytes(bytesOf(`[7,${text}]`), { plainIntegers: true }),
      /number must be a plain integer/,
      text,
    );
  }
  assert.throws(
    () => parseJsonBytes(bytesOf("1234567890123456"), { plainIntegers: true }),
    /integer is too long/,
  );
  assert.deepStrictEqual(
    parseJsonBytes(bytesOf('{"id":1,"shard":[0,255,-0,123456789012345]}'), {
      plainIntegers: true,
    }),
    { id: 1, shard: [0, 255, -0, 123456789012345] },
  );
  // Without the option the same tokens read as JSON.parse reads them.
  assert.deepStrictEqual(parseJsonBytes(bytesOf("[1e1,10.0]")), [10, 10]);
});

Deno.test("a shard sent with exponent numbers is refused under plainIntegers", () => {
  const shard = Array.from({ length: 32 }, (_, i) => `${i + 1}`);
  shard[5] = "6e0";
  const body = bytesOf(`{"shard":[${shard.join(",")}]}`);
  assert.throws(
    () => parseJsonBytes(body, { plainIntegers: true }),
    /number must be a plain integer/,
  );
});

Deno.test("takeShardArray reads 32 bytes and zeroes the parsed array", () => {
  const numbers = Array.from({ length: 32 }, (_, i) => i * 8);
  const parsed = parseJsonBytes(
    bytesOf(`{"shard":[${numbers.join(",")}]}`),
    { plainIntegers: true },
  ) as { shard: number[] };
  const shard = takeShardArray(parsed.shard);
  assert.deepEqual(shard, new Uint8Array(numbers));
  assert.deepEqual(parsed.shard, new Array(32).fill(0));
});

Deno.test("takeShardArray refuses a malformed array and still zeroes it", () => {
  const good = () => Array.from({ length: 32 }, () => 9);
  const bad: unknown[][] = [
    [...good().slice(1), 256],
    [...good().slice(1), -1],
    [...good().slice(1), 1.5],
    [...good().slice(1), "9"],
  ];
  for (const value of bad) {
    assert.equal(takeShardArray(value as number[]), undefined);
    assert.ok(value.every((n) => n === 0), String(value));
  }
  const short = good().slice(1);
  assert.equal(takeShardArray(short), undefined);
  assert.ok(short.every((n) => n === 0));
  const long = [...good(), 9];
  assert.equal(takeShardArray(long), undefined);
  assert.ok(long.every((n) => n === 0));
  assert.equal(takeShardArray({ 0: 1 }), undefined);
  assert.equal(takeShardArray(undefined), undefined);
});

Deno.test("JsonBytesWriter writes bytes that parse back", () => {
  const bytes = new Uint8Array(32).map((_, i) =>
    [0, 9, 10, 99, 100, 255][i % 6]!
  );
  const out = new JsonBytesWriter().raw('{"shard":').byteArray(bytes).raw("}")
    .finish();
  assert.ok(
    new TextDecoder().decode(out).startsWith('{"shard":[0,9,10,99,100,255,0,'),
  );
  const parsed = parseJsonBytes(out, { plainIntegers: true }) as {
    shard: number[];
  };
  assert.deepEqual(takeShardArray(parsed.shard), bytes);
  assert.ok(parsed.shard.every((n) => n === 0));
});
