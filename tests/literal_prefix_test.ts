// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The literal prefix of a policy path pattern: what a scoped secret list
// reads instead of the whole table. A wrong prefix would hide secrets a
// policy grants, so every match of every pattern is checked against it.
import assert from "node:assert/strict";
import { literalPrefix } from "../modes/nexus/policy/literal_prefix.ts";
import { compileAnchored } from "../modes/nexus/policy/pattern.ts";

Deno.test("literal prefix of common policy patterns", () => {
  const cases: [string, string][] = [
    ["tenants/acme/.*", "tenants/acme/"],
    ["^apps/db$", "apps/db"],
    ["apps/db", "apps/db"],
    ["apps/(a|b)/x", "apps/"],
    ["a|b", ""],
    ["apps/x|apps/y", ""],
    ["(apps/x)", ""],
    ["ab?c", "a"],
    ["ab*c", "a"],
    ["ab{0,2}c", "a"],
    ["ab+c", "ab"],
    ["a\\.b/.*", "a.b/"],
    ["a\\d", "a"],
    ["a[bc]d", "a"],
    ["a[|]b", "a"],
    ["a\\|b", "a|b"],
    [".*", ""],
    ["^.*", ""],
    ["x$", "x"],
    ["spike/system/secret", "spike/system/secret"],
  ];
  for (const [pattern, prefix] of cases) {
    assert.equal(literalPrefix(pattern), prefix, pattern);
  }
});

Deno.test("every string a pattern matches starts with its literal prefix", () => {
  const patterns = [
    "tenants/acme/.*",
    "apps/(a|b)/x",
    "ab?c",
    "ab+c",
    "a(b|c)*d",
    "a|ab",
    "(a|b)c",
    "x[ab]+y?",
    "a\\.b?",
    "a{1,2}b",
    "ab{0}c",
    "^a$|b",
  ];
  const alphabet = ["a", "b", "c", "d", "x", "y", "/", ".", "p"];
  const strings = [""];
  for (let len = 1; len <= 5; len++) {
    const start = strings.length;
    for (
      const s of strings.slice(
        strings.findIndex((x) => x.length === len - 1),
        start,
      )
    ) {
      for (const c of alphabet) strings.push(s + c);
    }
  }
  strings.push("tenants/acme/db", "tenants/acm", "apps/a/x", "apps/b/x");
  for (const pattern of patterns) {
    const prefix = literalPrefix(pattern);
    const re = compileAnchored(pattern);
    let matched = 0;
    for (const s of strings) {
      if (!re.test(s)) continue;
      matched++;
      assert.ok(s.startsWith(prefix), `${pattern}: "${s}" lacks "${prefix}"`);
    }
    assert.ok(matched > 0, `${pattern} matched none of the samples`);
  }
});
