// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import {
  checkPatternSafety,
  isReservedPath,
  MAX_VERSION,
  validateCas,
  validateOptionalVersion,
  validatePathPattern,
  validatePermissions,
  validatePolicyName,
  validateSecretKey,
  validateSecretPath,
  validateSecretValues,
  validateSpiffeIdPattern,
  validateVersion,
  validateVersions,
  ValidationError,
} from "../lib/wire/validate.ts";

/** Asserts `fn` throws a ValidationError for `field` whose message contains `rule`. */
function assertInvalid(fn: () => unknown, field: string, rule: string) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ValidationError, `not a ValidationError: ${e}`);
    assert.equal(e.name, "ValidationError");
    assert.equal(e.field, field);
    assert.ok(
      e.message.includes(rule),
      `"${e.message}" does not mention "${rule}"`,
    );
    assert.match(e.message, /^[A-Z]/);
    assert.doesNotMatch(e.message, /\.$/);
    return true;
  });
}

Deno.test("secret path accepts upstream's charset", () => {
  for (
    const p of [
      "a",
      "tenants/acme/db",
      "app.v1/cfg_x-y",
      "odd/(chars)?+*|[x]{y}\\z",
      "x".repeat(500),
      "spike/systemd",
      "spike/sys/acl",
    ]
  ) {
    assert.equal(validateSecretPath(p), p);
  }
});

Deno.test("secret path rejects wrong types, empty and overlong values", () => {
  assertInvalid(
    () => validateSecretPath(undefined),
    "path",
    "must be a string",
  );
  assertInvalid(() => validateSecretPath(42), "path", "must be a string");
  assertInvalid(() => validateSecretPath(""), "path", "1 to 500 characters");
  assertInvalid(
    () => validateSecretPath("x".repeat(501)),
    "path",
    "1 to 500 characters",
  );
});

Deno.test("secret path rejects characters outside the charset", () => {
  for (const p of ["a b", "a:b", "a\nb", "a%2fb", "ä", "a,b", "a^b", "a$b"]) {
    assertInvalid(() => validateSecretPath(p), "path", "may only contain");
  }
});

Deno.test("secret path rejects leading slash, empty and dot segments", () => {
  assertInvalid(() => validateSecretPath("/a"), "path", "start with a slash");
  assertInvalid(() => validateSecretPath("a/"), "path", "end with a slash");
  assertInvalid(() => validateSecretPath("a//b"), "path", "empty segments");
  for (const p of [".", "..", "a/./b", "a/../b", "../a", "a/.."]) {
    assertInvalid(() => validateSecretPath(p), "path", ". or .. segments");
  }
  assert.equal(validateSecretPath("a/.hidden/..x"), "a/.hidden/..x");
  assert.equal(validateSecretPath("a./.b/x.."), "a./.b/x..");
  // With both, the first bad segment names the rule.
  assertInvalid(() => validateSecretPath("a/..//b"), "path", ". or ..");
  assertInvalid(() => validateSecretPath("a//b/.."), "path", "empty segments");
});

Deno.test("secret path rejects the reserved spike/system namespace", () => {
  for (
    const p of [
      "spike/system",
      "spike/system/acl",
      "spike/system/secret",
      "spike/system/cipher/exec",
      "spike/system/anything/else",
    ]
  ) {
    assertInvalid(() => validateSecretPath(p), "path", "reserved");
  }
  assert.ok(isReservedPath("spike/system/acl"));
  assert.ok(!isReservedPath("spike/systemd"));
});

Deno.test("secret path error names the given field", () => {
  assertInvalid(() => validateSecretPath("", "key"), "key", "Secret path");
});

Deno.test("secret values accept an object of strings and copy it", () => {
  const input = JSON.parse(
    '{"user": "admin", "pass word": "s3cr3t", "A-b_9": "", "__proto__": "x"}',
  );
  const out = validateSecretValues(input);
  assert.notEqual(out, input);
  assert.deepEqual(Object.keys(out), [
    "user",
    "pass word",
    "A-b_9",
    "__proto__",
  ]);
  assert.equal(out["__proto__"], "x");
  assert.equal(Object.getPrototypeOf(out), Object.prototype);
  assert.deepEqual(validateSecretValues({}), {});
  assert.equal(
    validateSecretValues({ big: "v".repeat(1_000_000) }).big!.length,
    1_000_000,
  );
});

Deno.test("secret values reject non-objects, arrays and non-string values", () => {
  for (const v of [null, undefined, "x", 1, true, ["a"], []]) {
    assertInvalid(() => validateSecretValues(v), "values", "must be an object");
  }
  for (
    const v of [{ a: 1 }, { a: null }, { a: { b: "c" } }, { a: ["x"] }, {
      a: true,
    }]
  ) {
    assertInvalid(() => validateSecretValues(v), "values", "must be strings");
  }
});

Deno.test("secret values reject bad keys without echoing any value", () => {
  const secret = "hunter2-very-secret";
  for (
    const key of [
      "",
      ".",
      "..",
      "a/b",
      "a:b",
      "tab\there",
      "k".repeat(251),
      "é",
    ]
  ) {
    assert.throws(
      () => validateSecretValues({ [key]: secret }),
      (e: unknown) => {
        assert.ok(e instanceof ValidationError);
        assert.equal(e.field, "values");
        assert.match(e.message, /Secret value key/);
        assert.ok(!e.message.includes(secret));
        return true;
      },
    );
  }
  assert.throws(
    () => validateSecretValues({ ok: secret, bad: 7 }),
    (e: unknown) => e instanceof ValidationError && !e.message.includes(secret),
  );
  assert.deepEqual(validateSecretValues({ ["k".repeat(250)]: "v" }), {
    ["k".repeat(250)]: "v",
  });
});

Deno.test("secret value keys may hold dots, as certificate and config file names do", () => {
  const keys = [
    "tls.crt",
    "tls.key",
    "app.config",
    ".dockerconfigjson",
    "a..b",
  ];
  const values = Object.fromEntries(keys.map((k) => [k, "v"]));
  assert.deepEqual(Object.keys(validateSecretValues(values)), keys);
  assert.equal(validateSecretKey("ca.pem"), "ca.pem");
  assertInvalid(() => validateSecretKey(".."), "values", 'cannot be "." or');
  // Policy names keep upstream's rule: no dots.
  assertInvalid(() => validatePolicyName("a.b"), "name", "Policy name");
});

Deno.test("policy name is 1 to 250 letters, digits, dashes, underscores, spaces", () => {
  assert.equal(validatePolicyName("web app-1_x"), "web app-1_x");
  assert.equal(validatePolicyName("n".repeat(250)), "n".repeat(250));
  assertInvalid(() => validatePolicyName(""), "name", "1 to 250 characters");
  assertInvalid(() => validatePolicyName("n".repeat(251)), "name", "1 to 250");
  assertInvalid(() => validatePolicyName(null), "name", "must be a string");
  for (const n of ["a.b", "a/b", "a\nb", "ä", "a*"]) {
    assertInvalid(() => validatePolicyName(n), "name", "may only contain");
  }
  assertInvalid(() => validatePolicyName("a.b", "id"), "id", "Policy name");
});

Deno.test("spiffe id pattern accepts upstream forms", () => {
  for (
    const p of [
      "spiffe://spike\\.ist/workload/.*",
      "^spiffe://spike\\.ist/workload/app1$",
      "spiffe://spike.ist/ns/[^/]+/sa/[^/]+",
      "spiffe://(spike|acme)\\.ist/.*",
      "spiffe://.*",
    ]
  ) {
    assert.equal(validateSpiffeIdPattern(p), p);
  }
});

Deno.test("spiffe id pattern must start with spiffe://", () => {
  const f = "spiffeidPattern";
  for (
    const p of [
      ".*",
      "^.*",
      "spike/.*",
      "SPIFFE://x",
      "^^spiffe://x",
      "(spiffe://x)",
    ]
  ) {
    assertInvalid(
      () => validateSpiffeIdPattern(p),
      f,
      "must start with spiffe://",
    );
  }
});

Deno.test("spiffe id pattern rejects wrong types, lengths, spaces and bad regex", () => {
  const f = "spiffeidPattern";
  assertInvalid(
    () => validateSpiffeIdPattern(undefined),
    f,
    "must be a string",
  );
  assertInvalid(() => validateSpiffeIdPattern(""), f, "1 to 500 characters");
  assertInvalid(
    () => validateSpiffeIdPattern("spiffe://" + "a".repeat(492)),
    f,
    "1 to 500 characters",
  );
  assertInvalid(
    () => validateSpiffeIdPattern("spiffe://a b"),
    f,
    "printable ASCII",
  );
  assertInvalid(
    () => validateSpiffeIdPattern("spiffe://a\u00e9"),
    f,
    "printable ASCII",
  );
  for (
    const p of [
      "spiffe://a(",
      "spiffe://a[",
      "spiffe://a{2",
      "spiffe://\\-x",
      "spiffe://a)|(.*",
    ]
  ) {
    assertInvalid(
      () => validateSpiffeIdPattern(p),
      f,
      "valid regular expression",
    );
  }
});

Deno.test("path pattern accepts safe patterns", () => {
  for (
    const p of [
      "^tenants/acme/.*$",
      "tenants/acme/.*",
      "tenants/(acme|beta)/db",
      "acme",
      "spike/system/acl",
      "tenants/[^/]+/apps/[^/]+/.*",
      "a{2}/b+",
      ".*",
    ]
  ) {
    assert.equal(validatePathPattern(p), p);
  }
});

Deno.test("path pattern rejects wrong types, lengths, charset and bad regex", () => {
  const f = "pathPattern";
  assertInvalid(() => validatePathPattern(["a"]), f, "must be a string");
  assertInvalid(() => validatePathPattern(""), f, "1 to 500 characters");
  assertInvalid(() => validatePathPattern("a".repeat(501)), f, "1 to 500");
  for (const p of ["a b", "a,b", "(?:a)", "a{1,2}", "a:b", "(?=a)"]) {
    assertInvalid(() => validatePathPattern(p), f, "may only contain");
  }
  for (const p of ["a(", "a[", "*a", "a{", "a)|(.*", "\\-"]) {
    assertInvalid(() => validatePathPattern(p), f, "valid regular expression");
  }
});

Deno.test("regex bombs are refused by both pattern validators", () => {
  const bombs = [
    "(a+)+$",
    "(a|a)*",
    "(.*)*",
    "(a*)*",
    "(a+)+",
    "((a)+)*",
    "(a|aa)+",
    "(x?y?)+",
    "(a+){2}",
    ".*.*.*.*",
    "(a)\\1",
    "(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)" +
    "(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)",
    "a?".repeat(30) + "a".repeat(30),
  ];
  for (const bomb of bombs) {
    assertInvalid(() => validatePathPattern(bomb), "pathPattern", "cannot use");
    assertInvalid(
      () => validateSpiffeIdPattern(`spiffe://${bomb}`),
      "spiffeidPattern",
      "cannot use",
    );
  }
});

Deno.test("regex safety names the unsafe construct", () => {
  const check = (p: string) => () => checkPatternSafety(p, "f");
  assertInvalid(check("(a+)+"), "f", "nested quantifiers");
  assertInvalid(check("(a|b)*"), "f", "nested quantifiers");
  assertInvalid(check("((a|b)c)+"), "f", "nested quantifiers");
  assertInvalid(check("(a)\\1"), "f", "backreferences");
  assertInvalid(check("(?<n>a)\\k<n>"), "f", "backreferences");
  assertInvalid(check("(?=a)a"), "f", "lookahead, lookbehind");
  assertInvalid(check("(?!a)b"), "f", "lookahead, lookbehind");
  assertInvalid(check("(?<=a)b"), "f", "lookahead, lookbehind");
  assertInvalid(check("(?<!a)b"), "f", "lookahead, lookbehind");
  assertInvalid(check("(?i:a)"), "f", "lookahead, lookbehind");
  assertInvalid(check("a{1001}"), "f", "repetition counts above 1000");
  assertInvalid(check("a{0,5000}"), "f", "repetition counts above 1000");
  assertInvalid(check(".*a.*b.*c.*"), "f", "at most three unbounded");
  assertInvalid(check("[^/]+(x|y|z)/.*/.*/.*"), "f", "at most three unbounded");
});

Deno.test("regex safety accepts single-level quantifiers and plain groups", () => {
  for (
    const p of [
      "^tenants/acme/.*$",
      "spiffe://spike\\.ist/workload/.*",
      "tenants/(acme|beta)/db",
      "(ab)+c",
      "(a+)?",
      "(?:ab){1,3}",
      "(?<tenant>[a-z]+)/db",
      "[(*+|]+x",
      "\\p{L}+\\u{41}*",
      "a|b|c",
      ".*.*.*",
      "\\(a+\\)+",
      "x{1000}",
    ]
  ) {
    checkPatternSafety(p, "f");
  }
});

Deno.test("permissions are a non-empty list of known names, deduplicated", () => {
  assert.deepEqual(validatePermissions(["write", "read", "write"]), [
    "read",
    "write",
  ]);
  assert.deepEqual(
    validatePermissions(["super", "execute", "list", "write", "read"]),
    ["read", "write", "list", "execute", "super"],
  );
  const f = "permissions";
  assertInvalid(() => validatePermissions([]), f, "non-empty list");
  assertInvalid(() => validatePermissions(undefined), f, "non-empty list");
  assertInvalid(() => validatePermissions("read"), f, "non-empty list");
  for (
    const bad of [["admin"], ["read", "READ"], [1], [null], ["read", ["write"]]]
  ) {
    assertInvalid(
      () => validatePermissions(bad),
      f,
      "one of read, write, list, execute, super",
    );
  }
});

Deno.test("versions are integers from 0 to 2^31-1", () => {
  assert.equal(validateVersion(0), 0);
  assert.equal(validateVersion(7), 7);
  assert.equal(validateVersion(MAX_VERSION), 2147483647);
  for (
    const v of [
      -1,
      1.5,
      MAX_VERSION + 1,
      NaN,
      Infinity,
      "1",
      null,
      undefined,
      true,
      [1],
    ]
  ) {
    assertInvalid(
      () => validateVersion(v),
      "version",
      "integer from 0 to 2147483647",
    );
  }
  assert.equal(validateOptionalVersion(undefined), 0);
  assert.equal(validateOptionalVersion(null), 0);
  assert.equal(validateOptionalVersion(3), 3);
  assertInvalid(() => validateOptionalVersion("3"), "version", "integer");
});

Deno.test("version lists default to empty and reject bad elements", () => {
  assert.deepEqual(validateVersions(undefined), []);
  assert.deepEqual(validateVersions(null), []);
  assert.deepEqual(validateVersions([3, 0, 3, 1]), [3, 0, 1]);
  assertInvalid(() => validateVersions("1,2"), "versions", "list of integers");
  assertInvalid(
    () => validateVersions({ 0: 1 }),
    "versions",
    "list of integers",
  );
  assertInvalid(() => validateVersions([1, -2]), "versions", "integer from 0");
  assertInvalid(() => validateVersions([1, 2.5]), "versions", "integer from 0");
});

Deno.test("cas is absent or a version", () => {
  assert.equal(validateCas(undefined), undefined);
  assert.equal(validateCas(null), undefined);
  assert.equal(validateCas(0), 0);
  assert.equal(validateCas(12), 12);
  assertInvalid(() => validateCas(-1), "cas", "integer from 0");
  assertInvalid(() => validateCas("0"), "cas", "integer from 0");
});
