// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { ConfigError } from "../lib/config/env.ts";
import { parseSpiffeId } from "../lib/spiffe/id.ts";
import {
  hasRole,
  type Role,
  roleId,
  ROLES,
  rolesOf,
  trustRoots,
} from "../lib/spiffe/roles.ts";

const VARIABLES = [
  "SPIKE_TRUST_ROOT",
  "SPIKE_TRUST_ROOT_NEXUS",
  "SPIKE_TRUST_ROOT_KEEPER",
  "SPIKE_TRUST_ROOT_PILOT",
  "SPIKE_TRUST_ROOT_BOOTSTRAP",
  "SPIKE_TRUST_ROOT_LITE_WORKLOAD",
];

/** Runs `fn` with exactly the given trust root variables set, then restores. */
function withEnv(vars: Record<string, string>, fn: () => void): void {
  const saved = new Map(VARIABLES.map((v) => [v, Deno.env.get(v)]));
  try {
    for (const v of VARIABLES) Deno.env.delete(v);
    for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
    fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  }
}

Deno.test("roleId builds the upstream SPIKE IDs in spike.ist by default", () => {
  withEnv({}, () => {
    const expected: Record<Role, string> = {
      nexus: "spiffe://spike.ist/spike/nexus",
      keeper: "spiffe://spike.ist/spike/keeper",
      superuser: "spiffe://spike.ist/spike/pilot/role/superuser",
      recover: "spiffe://spike.ist/spike/pilot/role/recover",
      restore: "spiffe://spike.ist/spike/pilot/role/restore",
      bootstrap: "spiffe://spike.ist/spike/bootstrap",
      lite: "spiffe://spike.ist/spike/workload/role/lite",
    };
    for (const role of ROLES) assert.equal(roleId(role), expected[role]);
    assert.equal(roleId("keeper", "b.org"), "spiffe://b.org/spike/keeper");
    assert.throws(() => roleId("keeper", "B.org"), /Trust domain/);
  });
});

Deno.test("hasRole matches the base ID and IDs below it", () => {
  withEnv({}, () => {
    assert.ok(hasRole("spiffe://spike.ist/spike/nexus", "nexus"));
    assert.ok(hasRole("spiffe://spike.ist/spike/nexus/instance-0", "nexus"));
    assert.ok(
      hasRole(parseSpiffeId("spiffe://spike.ist/spike/keeper/1"), "keeper"),
    );
    assert.ok(
      hasRole("spiffe://spike.ist/spike/pilot/role/superuser", "superuser"),
    );
  });
});

Deno.test("hasRole rejects near misses", () => {
  withEnv({}, () => {
    assert.equal(hasRole("spiffe://spike.ist/spike/nexusX", "nexus"), false);
    assert.equal(hasRole("spiffe://spike.ist/spike", "nexus"), false);
    assert.equal(hasRole("spiffe://spike.ist/x/spike/nexus", "nexus"), false);
    assert.equal(hasRole("spiffe://spike.ist/Spike/nexus", "nexus"), false);
    assert.equal(hasRole("spiffe://spike.istx/spike/nexus", "nexus"), false);
    assert.equal(hasRole("spiffe://x.spike.ist/spike/nexus", "nexus"), false);
    assert.equal(
      hasRole("spiffe://spike.ist/spike/pilot/recover", "recover"),
      false,
    );
    assert.equal(hasRole("spiffe://spike.ist/spike/nexus/", "nexus"), false);
    assert.equal(hasRole("not an id", "nexus"), false);
    assert.equal(hasRole("spiffe://spike.ist/spike/nexus", "keeper"), false);
  });
});

Deno.test("rolesOf lists every role an ID carries", () => {
  withEnv({}, () => {
    assert.deepEqual(rolesOf("spiffe://spike.ist/spike/bootstrap"), [
      "bootstrap",
    ]);
    assert.deepEqual(
      rolesOf("spiffe://spike.ist/spike/workload/role/lite/app"),
      ["lite"],
    );
    assert.deepEqual(rolesOf("spiffe://spike.ist/spike/workload/app"), []);
    assert.deepEqual(rolesOf("spiffe://other.org/spike/nexus"), []);
  });
});

Deno.test("trustRoots reads a trimmed comma list and ignores empty entries", () => {
  withEnv({ SPIKE_TRUST_ROOT_NEXUS: " a.org, ,b.org,,a.org , " }, () => {
    assert.deepEqual(trustRoots("nexus"), ["a.org", "b.org"]);
    assert.ok(hasRole("spiffe://a.org/spike/nexus", "nexus"));
    assert.ok(hasRole("spiffe://b.org/spike/nexus/2", "nexus"));
    assert.equal(hasRole("spiffe://spike.ist/spike/nexus", "nexus"), false);
    assert.equal(roleId("nexus"), "spiffe://a.org/spike/nexus");
  });
});

Deno.test("trustRoots uses the role variable, then SPIKE_TRUST_ROOT, then spike.ist", () => {
  withEnv({}, () => assert.deepEqual(trustRoots("keeper"), ["spike.ist"]));
  withEnv({ SPIKE_TRUST_ROOT: "c.org" }, () => {
    assert.deepEqual(trustRoots("keeper"), ["c.org"]);
  });
  withEnv(
    { SPIKE_TRUST_ROOT: "c.org", SPIKE_TRUST_ROOT_KEEPER: "k.org" },
    () => {
      assert.deepEqual(trustRoots("keeper"), ["k.org"]);
      assert.deepEqual(trustRoots("nexus"), ["c.org"]);
    },
  );
  // A blank role variable counts as unset.
  withEnv({ SPIKE_TRUST_ROOT: "c.org", SPIKE_TRUST_ROOT_KEEPER: "  " }, () => {
    assert.deepEqual(trustRoots("keeper"), ["c.org"]);
  });
});

Deno.test("trustRoots maps each role to its variable", () => {
  withEnv({
    SPIKE_TRUST_ROOT_NEXUS: "n.org",
    SPIKE_TRUST_ROOT_KEEPER: "k.org",
    SPIKE_TRUST_ROOT_PILOT: "p.org",
    SPIKE_TRUST_ROOT_BOOTSTRAP: "b.org",
    SPIKE_TRUST_ROOT_LITE_WORKLOAD: "l.org",
  }, () => {
    const expected: Record<Role, string> = {
      nexus: "n.org",
      keeper: "k.org",
      superuser: "p.org",
      recover: "p.org",
      restore: "p.org",
      bootstrap: "b.org",
      lite: "l.org",
    };
    for (const role of ROLES) {
      assert.deepEqual(trustRoots(role), [expected[role]]);
    }
  });
});

Deno.test("trustRoots reads the environment at every call", () => {
  withEnv({ SPIKE_TRUST_ROOT_NEXUS: "a.org" }, () => {
    assert.ok(hasRole("spiffe://a.org/spike/nexus", "nexus"));
    Deno.env.set("SPIKE_TRUST_ROOT_NEXUS", "b.org");
    assert.equal(hasRole("spiffe://a.org/spike/nexus", "nexus"), false);
    assert.ok(hasRole("spiffe://b.org/spike/nexus", "nexus"));
  });
});

Deno.test("trustRoots rejects a list with no trust domain", () => {
  withEnv({ SPIKE_TRUST_ROOT_PILOT: " , ," }, () => {
    assert.throws(
      () => trustRoots("superuser"),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message === "SPIKE_TRUST_ROOT_PILOT holds no trust domain",
    );
  });
});

Deno.test("trustRoots rejects an invalid trust domain entry", () => {
  for (const bad of ["Spike.ist", "spiffe://a.org", "a.org/x", "a b"]) {
    withEnv({ SPIKE_TRUST_ROOT: `ok.org,${bad}` }, () => {
      assert.throws(
        () => trustRoots("keeper"),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.message.startsWith(
            `SPIKE_TRUST_ROOT holds an invalid trust domain "${bad}"`,
          ),
      );
      // A misconfiguration is loud, not a silent "no role".
      assert.throws(
        () => hasRole("spiffe://ok.org/spike/keeper", "keeper"),
        ConfigError,
      );
    });
  }
});
