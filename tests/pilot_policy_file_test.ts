// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import {
  parsePolicyFile,
  parsePolicyYaml,
  PolicyFileError,
} from "../modes/pilot/policy_file.ts";
import { policyFromFile } from "../modes/pilot/policy.ts";
import { CliError } from "../modes/pilot/cli_error.ts";

const BASE = "spiffeidPattern: ^spiffe://a/.*$\npathPattern: ^x$\n";

Deno.test("a JSON policy file with a key given twice is refused, naming the file", () => {
  const text = '{"name": "d", "spiffeidPattern": "^spiffe://a/.*$", ' +
    '"pathPattern": "^x$", "permissions": ["read"], "permissions": ["super"]}';
  assert.throws(() => parsePolicyFile(text), (e: unknown) => {
    assert.ok(e instanceof PolicyFileError);
    assert.match(
      e.message,
      /^Policy file is not valid JSON: duplicate object key at byte \d+$/,
    );
    return true;
  });
  assert.throws(() => policyFromFile(text, "p.json"), (e: unknown) => {
    assert.ok(e instanceof CliError);
    assert.equal(e.exitCode, 2);
    assert.match(
      e.message,
      /^Invalid policy file "p\.json": .*duplicate object key/,
    );
    assert.ok(!e.message.includes("\n"));
    return true;
  });
});

Deno.test("a JSON policy file with a syntax error names the byte", () => {
  assert.throws(
    () => parsePolicyFile('{"name": }'),
    /: Policy file is not valid JSON: unexpected token at byte 9$/,
  );
});

Deno.test("plain null, ~ and empty values in a YAML policy are missing fields", () => {
  for (const nothing of ["null", "~", "Null", "NULL", ""]) {
    const text = `name: ${nothing}\n${BASE}permissions: [read]\n`;
    assert.equal(parsePolicyYaml(text).name, undefined, nothing);
    assert.throws(
      () => parsePolicyFile(text),
      /: Policy file is missing name$/,
      nothing,
    );
  }
  assert.throws(
    () => parsePolicyFile(`name: n\n${BASE}permissions:\n`),
    /: Policy file is missing permissions$/,
  );
  // Quoted, they are strings; other plain scalars stay strings too.
  assert.equal(parsePolicyYaml('name: "null"').name, "null");
  assert.equal(parsePolicyYaml("name: 'NULL'").name, "NULL");
  assert.equal(parsePolicyYaml("name: nULL").name, "nULL");
  assert.equal(parsePolicyYaml("name: true").name, "true");
  assert.equal(parsePolicyYaml("name: 0x1f").name, "0x1f");
  // An empty flow list stays a list (and fails the permissions rules).
  assert.deepEqual(parsePolicyYaml("permissions: []").permissions, []);
});

Deno.test("a null list entry in a YAML policy is refused with its line", () => {
  for (
    const text of ["permissions:\n  - read\n  - ~", "permissions: [read, null]"]
  ) {
    assert.throws(
      () => parsePolicyYaml(text),
      /line \d: a list entry cannot be null/,
    );
  }
});
