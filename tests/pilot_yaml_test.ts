// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { toYaml } from "../modes/pilot/yaml_emit.ts";
import {
  parsePolicyFile,
  parsePolicyYaml,
  PolicyFileError,
} from "../modes/pilot/policy_file.ts";
import { policyFromFile, policyView } from "../modes/pilot/policy.ts";
import { CliError } from "../modes/pilot/cli_error.ts";

Deno.test("toYaml writes maps, lists and nested blocks", () => {
  assert.equal(
    toYaml({
      name: "web",
      permissions: ["read", "list"],
      meta: { current: 3, deleted: null, ok: true },
      empty: [],
      none: {},
    }),
    [
      "name: web",
      "permissions:",
      "  - read",
      "  - list",
      "meta:",
      "  current: 3",
      "  deleted: null",
      "  ok: true",
      "empty: []",
      "none: {}",
      "",
    ].join("\n"),
  );
});

Deno.test("toYaml writes a list of maps with the first key on the dash line", () => {
  assert.equal(
    toYaml([{ index: 1, url: "https://a:1" }, {
      index: 2,
      url: "https://b:2",
    }]),
    "- index: 1\n  url: https://a:1\n- index: 2\n  url: https://b:2\n",
  );
});

Deno.test("toYaml quotes strings YAML would read as something else", () => {
  const cases: [string, string][] = [
    ["", '""'],
    ["true", '"true"'],
    ["No", '"No"'],
    ["null", '"null"'],
    ["~", '"~"'],
    ["123", '"123"'],
    ["1.5e3", '"1.5e3"'],
    ["0x1f", '"0x1f"'],
    ["- item", '"- item"'],
    ["a: b", '"a: b"'],
    ["key:", '"key:"'],
    ["x #y", '"x #y"'],
    ["*ref", '"*ref"'],
    [" lead", '" lead"'],
    ["trail ", '"trail "'],
    ["two\nlines", '"two\\nlines"'],
    ["héllo", '"héllo"'],
    ["^spiffe://spike\\.ist/.*$", "^spiffe://spike\\.ist/.*$"],
    ["plain text", "plain text"],
  ];
  for (const [input, output] of cases) {
    assert.equal(toYaml({ v: input }), `v: ${output}\n`, input);
  }
});

Deno.test("toYaml writes scalars and empty collections as documents", () => {
  assert.equal(toYaml("secret value"), "secret value\n");
  assert.equal(toYaml("yes"), '"yes"\n');
  assert.equal(toYaml([]), "[]\n");
  assert.equal(toYaml({}), "{}\n");
  assert.equal(toYaml(null), "null\n");
  // Integer-like keys come first in JS objects; they are quoted.
  assert.equal(toYaml({ "a key": 1, "1": 2 }), '"1": 2\na key: 1\n');
});

Deno.test("parsePolicyYaml reads block lists", () => {
  const text = [
    "# a policy",
    "---",
    "name: web-read",
    "spiffeidPattern: ^spiffe://spike\\.ist/web/.*$",
    "pathPattern: '^apps/web/.*$'   # quoted",
    "permissions:",
    "  - read",
    '  - "list"',
    "",
  ].join("\n");
  assert.deepEqual(parsePolicyYaml(text), {
    name: "web-read",
    spiffeidPattern: "^spiffe://spike\\.ist/web/.*$",
    pathPattern: "^apps/web/.*$",
    permissions: ["read", "list"],
  });
});

Deno.test("parsePolicyYaml reads flow lists and unindented block lists", () => {
  assert.deepEqual(
    parsePolicyYaml("permissions: [read, 'write', \"list\"]\n").permissions,
    ["read", "write", "list"],
  );
  assert.deepEqual(parsePolicyYaml("permissions: []").permissions, []);
  assert.deepEqual(
    parsePolicyYaml("permissions:\n- read\n- super\nname: x").permissions,
    ["read", "super"],
  );
});

Deno.test("parsePolicyYaml reads quoting rules and CRLF line ends", () => {
  const data = parsePolicyYaml(
    "name: \"it's \\\"x\\\"\"\r\npathPattern: 'a''b'\r\nspiffeidPattern: a#b\r\n",
  );
  assert.equal(data.name, 'it\'s "x"');
  assert.equal(data.pathPattern, "a'b");
  // `#` starts a comment only after a blank.
  assert.equal(data.spiffeidPattern, "a#b");
});

Deno.test("parsePolicyYaml names the line of a problem", () => {
  const bad: [string, RegExp][] = [
    ["name: x\n  nested: y", /line 2: nested mappings/],
    ["- read", /line 1: a list item must follow a key/],
    ["name x", /line 1: expected "key: value"/],
    ["name: a\nname: b", /line 2: "name" is given twice/],
    ["name: 'open", /line 1: a quoted value is not closed/],
    ["permissions: [read", /line 1: a \[list\] must end/],
    ["permissions: [read, [x]]", /nested lists/],
    ["permissions: [read,,list]", /empty entry/],
    ["name: *alias", /needs quotes/],
    ["name: a: b", /needs quotes/],
    ['name: "\\q"', /invalid escape/],
    ["\tname: x", /tabs/],
  ];
  for (const [text, pattern] of bad) {
    assert.throws(() => parsePolicyYaml(text), (e: unknown) => {
      assert.ok(e instanceof PolicyFileError);
      assert.match(e.message, pattern, text);
      return true;
    });
  }
});

Deno.test("parsePolicyFile reads JSON and refuses unknown or missing fields", () => {
  const json = parsePolicyFile(JSON.stringify({
    name: "n",
    spiffeidPattern: "^spiffe://a/b$",
    pathPattern: "^p$",
    permissions: ["read"],
  }));
  assert.equal(json.name, "n");
  assert.throws(
    () => parsePolicyFile("name: n\nspiffeIdPattern: x"),
    /Unknown policy field "spiffeIdPattern"/,
  );
  assert.throws(
    () => parsePolicyFile("name: n\npermissions: [read]"),
    /missing spiffeidPattern, pathPattern/,
  );
  assert.throws(() => parsePolicyFile("{ nope"), /not valid JSON/);
  assert.throws(() => parsePolicyFile("{}\n"), /missing name/);
});

Deno.test("policy get -f yaml output applies back unchanged", () => {
  const view = policyView({
    id: "",
    name: "web read",
    spiffiedPattern: "^spiffe://spike\\.ist/web/.*$",
    pathPattern: "^apps/(web|api)/.*$",
    permissions: ["read", "list"],
    createdAt: "2026-01-02T03:04:05.123456789Z",
    updatedAt: "2026-01-02T03:04:05.123456789Z",
  });
  assert.equal(view.spiffeidPattern, "^spiffe://spike\\.ist/web/.*$");
  const applied = policyFromFile(toYaml({ ...view }), "p.yaml");
  assert.deepEqual(applied, {
    name: "web read",
    spiffeidPattern: view.spiffeidPattern,
    pathPattern: view.pathPattern,
    permissions: ["read", "list"],
  });
  const fromJson = policyFromFile(JSON.stringify(view), "p.json");
  assert.deepEqual(fromJson, applied);
});

Deno.test("policyFromFile turns file problems into usage errors naming the file", () => {
  const check = (text: string, pattern: RegExp) =>
    assert.throws(() => policyFromFile(text, "p.yaml"), (e: unknown) => {
      assert.ok(e instanceof CliError);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, pattern);
      return true;
    });
  const base = "name: n\nspiffeidPattern: ^spiffe://a/.*$\npathPattern: ^x$\n";
  check(base + "permissions: [read, fly]", /permissions in "p.yaml".*"fly"/);
  check(base + "permissions: []", /permissions in "p.yaml"/);
  check(
    base.replace("^spiffe://a/.*$", ".*") + "permissions: [read]",
    /spiffeidPattern in "p.yaml"/,
  );
  check("name: n", /^Invalid policy file "p.yaml": policy file is missing/);
  // A comma list in one string is accepted too.
  assert.deepEqual(
    policyFromFile(base + "permissions: read, write", "p.yaml").permissions,
    ["read", "write"],
  );
});
