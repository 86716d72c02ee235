// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { ValidationError } from "../lib/wire/validate.ts";
import {
  type Permission,
  PolicyEngine,
  type PolicyRecord,
} from "../modes/nexus/policy/engine.ts";
import { compileAnchored } from "../modes/nexus/policy/pattern.ts";

const APP = "spiffe://spike.ist/workload/app1";
const OTHER = "spiffe://spike.ist/workload/app2";
const NOW = "2026-01-01T00:00:00.000Z";

function policy(
  name: string,
  spiffeIdPattern: string,
  pathPattern: string,
  permissions: Permission[],
): PolicyRecord {
  return {
    name,
    spiffeIdPattern,
    pathPattern,
    permissions,
    createdAt: NOW,
    updatedAt: NOW,
  };
}

function engineWith(...records: PolicyRecord[]): PolicyEngine {
  const engine = new PolicyEngine();
  assert.deepEqual(engine.load(records), []);
  return engine;
}

Deno.test("path pattern acme does not match tenants/acme/db", () => {
  const engine = engineWith(policy("p", "spiffe://.*", "acme", ["read"]));
  assert.equal(engine.allows(APP, "tenants/acme/db", ["read"]), false);
  assert.equal(engine.allows(APP, "acme/x", ["read"]), false);
  assert.equal(engine.allows(APP, "xacme", ["read"]), false);
  assert.equal(engine.allows(APP, "acme", ["read"]), true);
});

Deno.test("prefix pattern tenants/acme/.* matches paths below it only", () => {
  for (
    const pattern of [
      "tenants/acme/.*",
      "^tenants/acme/.*$",
      "^tenants/acme/.*",
    ]
  ) {
    const engine = engineWith(policy("p", "spiffe://.*", pattern, ["read"]));
    assert.equal(
      engine.allows(APP, "tenants/acme/db", ["read"]),
      true,
      pattern,
    );
    assert.equal(engine.allows(APP, "tenants/acme/db/x", ["read"]), true);
    assert.equal(engine.allows(APP, "tenants/acmex/db", ["read"]), false);
    assert.equal(engine.allows(APP, "other/tenants/acme/db", ["read"]), false);
  }
});

Deno.test("top-level alternation is anchored as a whole", () => {
  const engine = engineWith(
    policy("p", "spiffe://.*", "acme|tenants/beta/db", ["read"]),
  );
  assert.equal(engine.allows(APP, "acme", ["read"]), true);
  assert.equal(engine.allows(APP, "tenants/beta/db", ["read"]), true);
  assert.equal(engine.allows(APP, "acme/tenants/x", ["read"]), false);
  assert.equal(engine.allows(APP, "x/tenants/beta/db", ["read"]), false);
  const groups = engineWith(
    policy("p", "spiffe://.*", "tenants/(acme|beta)/db", ["read"]),
  );
  assert.equal(groups.allows(APP, "tenants/beta/db", ["read"]), true);
  assert.equal(groups.allows(APP, "tenants/gamma/db", ["read"]), false);
});

Deno.test("spiffe id pattern matches the whole id", () => {
  const engine = engineWith(
    policy("p", "spiffe://spike\\.ist/workload/app1", ".*", ["read"]),
  );
  assert.equal(engine.allows(APP, "a", ["read"]), true);
  assert.equal(engine.allows(`${APP}0`, "a", ["read"]), false);
  assert.equal(engine.allows(`${APP}/sub`, "a", ["read"]), false);
  assert.equal(
    engine.allows("spiffe://spikexist/workload/app1", "a", ["read"]),
    false,
  );
  assert.equal(
    engine.allows("spiffe://evil.org/x/spiffe://spike.ist/workload/app1", "a", [
      "read",
    ]),
    false,
  );
  const prefix = engineWith(
    policy("p", "^spiffe://spike\\.ist/workload/.*$", ".*", ["read"]),
  );
  assert.equal(prefix.allows(OTHER, "a", ["read"]), true);
  assert.equal(
    prefix.allows("spiffe://spike.ist/spike/nexus", "a", ["read"]),
    false,
  );
});

Deno.test("permissions must cover every wanted permission", () => {
  const engine = engineWith(policy("p", "spiffe://.*", ".*", ["read", "list"]));
  assert.equal(engine.allows(APP, "a", ["read"]), true);
  assert.equal(engine.allows(APP, "a", ["list"]), true);
  assert.equal(engine.allows(APP, "a", ["read", "list"]), true);
  assert.equal(engine.allows(APP, "a", ["write"]), false);
  assert.equal(engine.allows(APP, "a", ["read", "write"]), false);
  assert.equal(engine.allows(APP, "a", ["execute"]), false);
  assert.equal(engine.allows(APP, "a", ["super"]), false);
});

Deno.test("super grants every permission", () => {
  const engine = engineWith(policy("p", "spiffe://.*", "a", ["super"]));
  for (const p of ["read", "write", "list", "execute", "super"] as const) {
    assert.equal(engine.allows(APP, "a", [p]), true);
  }
  assert.equal(engine.allows(APP, "a", ["read", "write", "execute"]), true);
  assert.equal(engine.allows(APP, "b", ["read"]), false);
});

Deno.test("an empty wanted list is never allowed", () => {
  const engine = engineWith(policy("p", "spiffe://.*", ".*", ["super"]));
  assert.equal(engine.allows(APP, "a", []), false);
});

Deno.test("no policies deny everything", () => {
  const engine = new PolicyEngine();
  assert.equal(engine.size, 0);
  assert.equal(engine.allows(APP, "a", ["read"]), false);
  assert.deepEqual(engine.listGrant(APP).prefixes, []);
});

Deno.test("grants are per policy, not combined across policies", () => {
  const engine = engineWith(
    policy("r", "spiffe://.*", "a", ["read"]),
    policy("w", "spiffe://.*", "b", ["write"]),
  );
  assert.equal(engine.allows(APP, "a", ["read"]), true);
  assert.equal(engine.allows(APP, "b", ["write"]), true);
  assert.equal(engine.allows(APP, "a", ["read", "write"]), false);
  assert.equal(engine.allows(APP, "b", ["read"]), false);
});

Deno.test("reserved paths are reached only by patterns that match them fully", () => {
  for (
    const pattern of ["system", "spike", "acl", "spike/system", "system/acl"]
  ) {
    const engine = engineWith(policy("p", "spiffe://.*", pattern, ["super"]));
    assert.equal(
      engine.allows(APP, "spike/system/acl", ["write"]),
      false,
      pattern,
    );
  }
  for (
    const pattern of [
      "spike/system/acl",
      "spike/system/.*",
      "^spike/system/acl$",
      "spike\\/system\\/acl",
      "spike/system/(acl|secret)",
      "spike/system/acl|spike/system/secret",
      "spike/system.*",
    ]
  ) {
    const engine = engineWith(policy("p", "spiffe://.*", pattern, ["write"]));
    assert.equal(
      engine.allows(APP, "spike/system/acl", ["write"]),
      true,
      pattern,
    );
  }
});

Deno.test("reserved paths are not reached by patterns without the literal spike/system prefix", () => {
  for (
    const pattern of [
      ".*",
      "s.*",
      "[a-z]+/.*",
      "spike/.*",
      "spike.system/.*",
      "spike/syste[m]/.*",
      "(spike/system/acl)",
      "spike/system/acl|.*",
      ".*|spike/system/acl",
      "\\u0073pike/system/acl",
      "[s]pike/system/acl",
    ]
  ) {
    const engine = engineWith(policy("p", "spiffe://.*", pattern, ["super"]));
    for (
      const path of [
        "spike/system/acl",
        "spike/system/secret",
        "spike/system/cipher/exec",
      ]
    ) {
      assert.equal(engine.allows(APP, path, ["write"]), false, pattern);
      assert.equal(engine.allows(APP, path, ["list"]), false, pattern);
    }
  }
  // Secrets are matched as before: full match, no literal prefix needed.
  const all = engineWith(policy("p", "spiffe://.*", ".*", ["read", "write"]));
  assert.equal(all.allows(APP, "apps/db", ["read"]), true);
  assert.equal(all.allows(APP, "spike/systemd/unit", ["write"]), true);
});

Deno.test("upsert adds and replaces a policy at once", () => {
  const engine = new PolicyEngine();
  engine.upsert(policy("p", "spiffe://.*", "a", ["read"]));
  assert.equal(engine.allows(APP, "a", ["read"]), true);
  engine.upsert(policy("p", "spiffe://.*", "b", ["read"]));
  assert.equal(engine.size, 1);
  assert.equal(engine.allows(APP, "a", ["read"]), false);
  assert.equal(engine.allows(APP, "b", ["read"]), true);
  engine.upsert(policy("p", "spiffe://.*", "b", ["write"]));
  assert.equal(engine.allows(APP, "b", ["read"]), false);
  assert.equal(engine.allows(APP, "b", ["write"]), true);
});

Deno.test("remove revokes the policy's grants", () => {
  const engine = engineWith(
    policy("p", "spiffe://.*", "a", ["read"]),
    policy("q", "spiffe://.*", "b", ["read"]),
  );
  assert.equal(engine.remove("p"), true);
  assert.equal(engine.remove("p"), false);
  assert.equal(engine.allows(APP, "a", ["read"]), false);
  assert.equal(engine.allows(APP, "b", ["read"]), true);
});

Deno.test("upsert of an invalid record throws and keeps the old policy", () => {
  const engine = engineWith(policy("p", "spiffe://.*", "a", ["read"]));
  const bad: PolicyRecord[] = [
    policy("p", ".*", "b", ["read"]),
    policy("p", "spiffe://.*", "(a+)+", ["read"]),
    policy("p", "spiffe://.*", "b", []),
    policy("p", "spiffe://.*", "b", ["admin" as Permission]),
    policy("p/x", "spiffe://.*", "b", ["read"]),
  ];
  for (const record of bad) {
    assert.throws(() => engine.upsert(record), ValidationError);
  }
  assert.equal(engine.allows(APP, "a", ["read"]), true);
  assert.equal(engine.allows(APP, "b", ["read"]), false);
});

Deno.test("load replaces all policies and skips invalid records", () => {
  const engine = engineWith(policy("old", "spiffe://.*", "old", ["read"]));
  const problems = engine.load([
    policy("good", "spiffe://.*", "a", ["read"]),
    policy("bomb", "spiffe://.*", "(.*)*", ["read"]),
    policy("anywhere", "spiffe://.*", "a)|(.*", ["read"]),
  ]);
  assert.deepEqual(problems.map((p) => p.name), ["bomb", "anywhere"]);
  assert.match(problems[0]!.reason, /nested quantifiers/);
  assert.match(problems[1]!.reason, /valid regular expression/);
  assert.equal(engine.size, 1);
  assert.equal(engine.allows(APP, "old", ["read"]), false);
  assert.equal(engine.allows(APP, "a", ["read"]), true);
  assert.equal(engine.allows(APP, "anything", ["read"]), false);
});

Deno.test("reload takes records from the source and keeps them when it fails", async () => {
  const engine = new PolicyEngine();
  assert.deepEqual(
    await engine.reload(() =>
      Promise.resolve([policy("p", "spiffe://.*", "a", ["read"])])
    ),
    [],
  );
  assert.equal(engine.allows(APP, "a", ["read"]), true);
  await assert.rejects(
    engine.reload(() => Promise.reject(new Error("Store is locked"))),
    /Store is locked/,
  );
  assert.equal(engine.allows(APP, "a", ["read"]), true);
  await engine.reload(() => []);
  assert.equal(engine.allows(APP, "a", ["read"]), false);
});

Deno.test("oversized input is denied without matching", () => {
  const engine = engineWith(policy("p", "spiffe://.*", ".*", ["super"]));
  assert.equal(engine.allows(APP, "a".repeat(500), ["read"]), true);
  assert.equal(engine.allows(APP, "a".repeat(501), ["read"]), false);
  assert.equal(
    engine.allows(`${APP}/${"x".repeat(2048)}`, "a", ["read"]),
    false,
  );
});

Deno.test("listable paths are those a policy grants list on", () => {
  const engine = engineWith(
    policy("acme", "spiffe://spike\\.ist/workload/app1", "tenants/acme/.*", [
      "list",
    ]),
    policy("beta", "spiffe://spike\\.ist/workload/.*", "tenants/beta/.*", [
      "read",
    ]),
    policy("shared", "spiffe://spike\\.ist/workload/.*", "shared/.*", [
      "super",
    ]),
  );
  const paths = [
    "tenants/acme/db",
    "tenants/beta/db",
    "shared/x",
    "tenants/acme",
    "other",
  ];
  const listable = (id: string) => {
    const grant = engine.listGrant(id);
    return paths.filter((p) => grant.allows(p));
  };
  assert.deepEqual(listable(APP), ["tenants/acme/db", "shared/x"]);
  assert.deepEqual(engine.listGrant(APP).prefixes, [
    "tenants/acme/",
    "shared/",
  ]);
  assert.deepEqual(listable(OTHER), ["shared/x"]);
  assert.deepEqual(engine.listGrant(OTHER).prefixes, ["shared/"]);
  assert.deepEqual(listable("spiffe://spike.ist/x"), []);
});

Deno.test("compileAnchored wraps the pattern and refuses one that escapes the group", () => {
  assert.equal(compileAnchored("a|b").source, "^(?:a|b)$");
  assert.ok(compileAnchored("^a$").test("a"));
  assert.throws(() => compileAnchored("a)|(.*"), SyntaxError);
});

Deno.test("engine takes store-shaped records with plain string permissions", () => {
  const stored = {
    name: "p",
    spiffeIdPattern: "spiffe://.*",
    pathPattern: "a",
    permissions: ["read", "read"] as readonly string[],
  };
  const engine = new PolicyEngine();
  assert.deepEqual(engine.load([stored]), []);
  assert.equal(engine.allows(APP, "a", ["read"]), true);
  const problems = engine.load([{ ...stored, permissions: ["read", "root"] }]);
  assert.deepEqual(problems.map((p) => p.name), ["p"]);
  assert.match(problems[0]!.reason, /Permissions must each be one of/);
  assert.equal(engine.allows(APP, "a", ["read"]), false);
});
