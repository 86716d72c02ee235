// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { toYaml } from "../modes/pilot/yaml_emit.ts";
import { parsePolicyYaml } from "../modes/pilot/policy_file.ts";

// Input -> the scalar toYaml writes. Each quoted form is what a YAML 1.1
// reader (PyYAML, yaml.v2, Psych) would otherwise take as another type,
// another string, or a document marker.
const CASES: readonly [string, string][] = [
  // Sexagesimal numbers (YAML 1.1).
  ["12:30", '"12:30"'],
  ["1:20.5", '"1:20.5"'],
  ["190:20:30", '"190:20:30"'],
  // Timestamps (YAML 1.1).
  ["2024-01-01", '"2024-01-01"'],
  ["2026-11-23T04:00:00.000Z", '"2026-11-23T04:00:00.000Z"'],
  ["2001-12-14 21:59:43.10 -5", '"2001-12-14 21:59:43.10 -5"'],
  // Numbers in every base and with underscores.
  ["0b101", '"0b101"'],
  ["0o17", '"0o17"'],
  ["017", '"017"'],
  ["0x1F", '"0x1F"'],
  ["1.5_", '"1.5_"'],
  ["1_000", '"1_000"'],
  ["1,000", '"1,000"'],
  ["+1", '"+1"'],
  ["-1", '"-1"'],
  [".5", '".5"'],
  [".inf", '".inf"'],
  ["-.Inf", '"-.Inf"'],
  [".NaN", '".NaN"'],
  // Null and booleans in every spelling YAML 1.1 knows.
  ["~", '"~"'],
  ["Null", '"Null"'],
  ["NULL", '"NULL"'],
  ["y", '"y"'],
  ["N", '"N"'],
  ["On", '"On"'],
  ["OFF", '"OFF"'],
  ["True", '"True"'],
  // Value and merge keys.
  ["=", '"="'],
  ["<<", '"<<"'],
  // Document markers.
  ["---", '"---"'],
  ["--- x", '"--- x"'],
  ["...", '"..."'],
  ["... x", '"... x"'],
  // Indicators and comments.
  [":sym", '":sym"'],
  ["a:", '"a:"'],
  ["a: b", '"a: b"'],
  ["a :b", '"a :b"'],
  ["x #y", '"x #y"'],
  ["a#b", '"a#b"'],
  ["? x", '"? x"'],
  ["%x", '"%x"'],
  ["@x", '"@x"'],
  ["!x", '"!x"'],
  ["&x", '"&x"'],
  ["|", '"|"'],
  ["[a]", '"[a]"'],
  ["'a'", `"'a'"`],
  ['"a"', '"\\"a\\""'],
  ["a  b", '"a  b"'],
  ["tab\tx", '"tab\\tx"'],
  // Characters JSON.stringify leaves raw that YAML would not read back.
  ["a\x7fb", '"a\\u007fb"'],
  ["a\x85b", '"a\\u0085b"'],
  ["a\x9fb", '"a\\u009fb"'],
  ["a\u2028b\u2029c", '"a\\u2028b\\u2029c"'],
  ["\ufeffbom", '"\\ufeffbom"'],
  ["a\ufffe\uffff", '"a\\ufffe\\uffff"'],
  ["héllo", '"héllo"'],
  // Strings that stay plain.
  ["apps/db", "apps/db"],
  ["web read", "web read"],
  ["spiffe://spike.ist/web", "spiffe://spike.ist/web"],
  [
    "^spiffe://spike\\.ist/(web|api)/.*$",
    "^spiffe://spike\\.ist/(web|api)/.*$",
  ],
  ["_x-1.2", "_x-1.2"],
  ["yesterday", "yesterday"],
];

Deno.test("toYaml quotes every string a YAML 1.1 or 1.2 reader would change", () => {
  for (const [input, output] of CASES) {
    assert.equal(toYaml({ v: input }), `v: ${output}\n`, input);
    assert.equal(toYaml([input]), `- ${output}\n`, input);
    assert.equal(toYaml(input), `${output}\n`, input);
    assert.equal(toYaml({ [input]: 1 }), `${output}: 1\n`, input);
  }
});

Deno.test("policy apply reads back every string toYaml writes", () => {
  for (const [input] of CASES) {
    assert.equal(parsePolicyYaml(toYaml({ name: input })).name, input);
  }
});

async function hasPyYaml(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("python3", {
      args: ["-c", "import yaml"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

const PYYAML = await hasPyYaml();
if (!PYYAML) {
  console.log("PyYAML is not installed: the PyYAML round trip is skipped");
}

// Loads each YAML document with PyYAML's safe_load (YAML 1.1) and prints
// the values as JSON; a datetime or other non-JSON value fails the dump.
const LOAD_ALL = [
  "import json, sys, yaml",
  "docs = json.loads(sys.stdin.buffer.read())",
  "print(json.dumps([yaml.safe_load(d) for d in docs]))",
].join("\n");

Deno.test({
  name: "toYaml output reads back unchanged through PyYAML safe_load",
  ignore: !PYYAML,
  async fn() {
    const values = CASES.flatMap(([input]) => [
      input,
      [input],
      { [input]: input, after: "x" },
    ]);
    const child = new Deno.Command("python3", {
      args: ["-c", LOAD_ALL],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(
      new TextEncoder().encode(JSON.stringify(values.map((v) => toYaml(v)))),
    );
    await writer.close();
    const { success, stdout, stderr } = await child.output();
    assert.ok(success, new TextDecoder().decode(stderr));
    const loaded = JSON.parse(new TextDecoder().decode(stdout));
    values.forEach((value, i) =>
      assert.deepEqual(loaded[i], value, JSON.stringify(value))
    );
  },
});
