// Copyright 2026 the SPIKE for Deno authors. MIT license.
// parseJsonStrict must read and refuse exactly as the byte reader does.
import assert from "node:assert/strict";
import { JsonBytesError, parseJsonBytes } from "../lib/wire/json_bytes.ts";
import { parseJsonStrict } from "../lib/wire/json_strict.ts";

const bytesOf = (text: string) => new TextEncoder().encode(text);

function sameAsByteReader(body: Uint8Array, label: string): void {
  let expected: unknown;
  let expectedError: Error | undefined;
  try {
    expected = parseJsonBytes(body);
  } catch (e) {
    expectedError = e as Error;
  }
  if (expectedError === undefined) {
    assert.deepStrictEqual(parseJsonStrict(body), expected, label);
  } else {
    assert.throws(
      () => parseJsonStrict(body),
      (e: unknown) =>
        e instanceof JsonBytesError && e.message === expectedError.message,
      label,
    );
  }
}

const CASES = [
  // Values both readers take.
  '"plain"',
  '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
  '"\\u0000\\u001f\\u007f\\u00e9\\uFFFF"',
  '"\\ud800 lone high"',
  '"\u2028\u2029 raw separators"',
  '"\uFEFF leading BOM"',
  "-0",
  "1e400",
  "12345678901234567890",
  "[]",
  "{}",
  '{"__proto__":{"x":1},"constructor":2}',
  '{"":0}',
  ' \t\r\n{ "a" : [ 1 , 2 ] , "b" : "c:d" } \n',
  '{"a":"x\\":y","b":"\\\\","c":":"}',
  '{"k\\"ey:":1,"k":{"x":[1,{"y":"\\\\\\":"}]}}',
  '{"path":"a/b","values":{"k":"v","k2":"v:2"}}',
  // Bodies both refuse.
  "",
  "[1,]",
  "01",
  "NaN",
  '"tab\there"',
  "\uFEFF{}",
  '{"a":',
  '{"path":"a","path":"b"}',
  '{"a":1,"\\u0061":2}',
  '{"a":{"b":1,"b":1}}',
  '{"a":"x:y","a":"z"}',
  '[{"a":1},{"b":2,"b":3}]',
  '{"a\\"":1,"a\\u0022":2}',
];

Deno.test("parseJsonStrict reads and refuses as the byte reader does", () => {
  for (const text of CASES) sameAsByteReader(bytesOf(text), text);
});

Deno.test("parseJsonStrict keeps duplicate keys apart from their look-alikes", () => {
  assert.deepStrictEqual(parseJsonStrict(bytesOf('{"a":{"b":1},"b":1}')), {
    a: { b: 1 },
    b: 1,
  });
  assert.throws(
    () => parseJsonStrict(bytesOf('{"x":"1","y":{"x":2},"x":3}')),
    /duplicate object key/,
  );
});

Deno.test("parseJsonStrict accepts 32 levels of nesting and refuses 33", () => {
  for (const [open, close, empty] of [["[", "]", "[]"], ['{"k":', "}", "{}"]]) {
    const nest = (n: number) =>
      bytesOf(open!.repeat(n - 1) + empty! + close!.repeat(n - 1));
    assert.deepStrictEqual(parseJsonStrict(nest(32)), parseJsonBytes(nest(32)));
    assert.throws(() => parseJsonStrict(nest(33)), /nesting too deep/);
  }
  const deep = bytesOf("[".repeat(50_000) + "]".repeat(50_000));
  assert.throws(() => parseJsonStrict(deep), /nesting too deep/);
});

Deno.test("parseJsonStrict refuses invalid UTF-8 with the byte reader's message", () => {
  for (const bad of [[0xc3, 0x28], [0xed, 0xa0, 0x80], [0xff]]) {
    const body = new Uint8Array([
      ...bytesOf('{"a":"'),
      ...bad,
      ...bytesOf('"}'),
    ]);
    sameAsByteReader(body, String(bad));
    assert.throws(() => parseJsonStrict(body), /invalid UTF-8/);
  }
});

Deno.test("parseJsonStrict errors give a position, never content", () => {
  for (const text of ['{"a":"s3cret\\q"}', '{"s3cret":1,"s3cret":2}']) {
    try {
      parseJsonStrict(bytesOf(text));
      assert.fail("parsed");
    } catch (e) {
      assert.ok(e instanceof JsonBytesError);
      assert.match(e.message, /^Invalid JSON at byte \d+: /);
      assert.ok(!e.message.includes("s3cret"), e.message);
    }
  }
});

Deno.test("parseJsonStrict reads a large body with long strings", () => {
  const big = "A".repeat(90_000);
  const body = bytesOf(`{"version":1,"nonce":"n:n","ciphertext":"${big}"}`);
  assert.deepStrictEqual(parseJsonStrict(body), {
    version: 1,
    nonce: "n:n",
    ciphertext: big,
  });
});

Deno.test("parseJsonStrict agrees with the byte reader on generated bodies", () => {
  // A fixed-seed generator: small key sets make duplicates likely, and
  // strings hold colons, quotes and backslashes, which the key count skips.
  let seed = 12345;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const pieces = ["a", ":", '\\"', "\\\\", "\\u003a", "x y", "é", "\\n"];
  const str = () =>
    `"${
      Array.from({ length: next(4) }, () => pieces[next(pieces.length)]).join(
        "",
      )
    }"`;
  const gen = (depth: number): string => {
    switch (depth > 3 ? next(3) : next(6)) {
      case 0:
        return str();
      case 1:
        return String(next(100) - 50);
      case 2:
        return ["true", "false", "null"][next(3)]!;
      case 3:
        return `[${
          Array.from({ length: next(3) }, () => gen(depth + 1)).join(",")
        }]`;
      default:
        return `{${
          Array.from({ length: next(4) }, () =>
            `${next(2) ? str() : `"k${next(3)}"`} : ${gen(depth + 1)}`).join(
              ",",
            )
        }}`;
    }
  };
  for (let i = 0; i < 3000; i++) {
    const text = gen(0);
    sameAsByteReader(bytesOf(text), text);
  }
});
