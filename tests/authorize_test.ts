// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { parseSpiffeId } from "../lib/spiffe/id.ts";
import {
  authorize,
  type Operation,
  secretListGrant,
  SYSTEM_PATHS,
} from "../modes/nexus/policy/authorize.ts";
import {
  type ListGrant,
  type Permission,
  PolicyEngine,
  type PolicyRecord,
} from "../modes/nexus/policy/engine.ts";

const TD = "spiffe://spike.ist";
const IDS = {
  superuser: `${TD}/spike/pilot/role/superuser`,
  recover: `${TD}/spike/pilot/role/recover`,
  restore: `${TD}/spike/pilot/role/restore`,
  bootstrap: `${TD}/spike/bootstrap`,
  lite: `${TD}/spike/workload/role/lite`,
  nexus: `${TD}/spike/nexus`,
  keeper: `${TD}/spike/keeper`,
  workload: `${TD}/workload/app1`,
} as const;
type Who = keyof typeof IDS;

const SECRET_OPS: Operation[] = [
  "secret.put",
  "secret.get",
  "secret.metadata",
  "secret.delete",
  "secret.undelete",
  "secret.list",
];
const POLICY_OPS: Operation[] = [
  "policy.put",
  "policy.get",
  "policy.delete",
  "policy.list",
];
const CIPHER_OPS: Operation[] = ["cipher.encrypt", "cipher.decrypt"];
const ROLE_OPS: Operation[] = [
  "operator.recover",
  "operator.restore",
  "bootstrap.verify",
];
const ALL_OPS = [...SECRET_OPS, ...POLICY_OPS, ...CIPHER_OPS, ...ROLE_OPS];
const DATA_OPS = [...SECRET_OPS, ...POLICY_OPS, ...CIPHER_OPS];

const TRUST_VARIABLES = [
  "SPIKE_TRUST_ROOT",
  "SPIKE_TRUST_ROOT_NEXUS",
  "SPIKE_TRUST_ROOT_KEEPER",
  "SPIKE_TRUST_ROOT_PILOT",
  "SPIKE_TRUST_ROOT_BOOTSTRAP",
  "SPIKE_TRUST_ROOT_LITE_WORKLOAD",
];

/** Runs `fn` with the trust roots at their default (spike.ist), then restores them. */
function withDefaultTrustRoots(fn: () => void): void {
  const saved = TRUST_VARIABLES.map((name) => [name, Deno.env.get(name)]);
  for (const name of TRUST_VARIABLES) Deno.env.delete(name);
  try {
    fn();
  } finally {
    for (const [name, value] of saved) {
      if (value !== undefined) Deno.env.set(name!, value);
    }
  }
}

function record(
  name: string,
  spiffeIdPattern: string,
  pathPattern: string,
  permissions: Permission[],
): PolicyRecord {
  const now = new Date(0).toISOString();
  return {
    name,
    spiffeIdPattern,
    pathPattern,
    permissions,
    createdAt: now,
    updatedAt: now,
  };
}

function engineWith(...records: PolicyRecord[]): PolicyEngine {
  const engine = new PolicyEngine();
  assert.deepEqual(engine.load(records), []);
  return engine;
}

/** Super on every secret and every reserved path, to everyone. */
const GRANT_ALL = [
  record("all", "spiffe://.*", ".*", ["super"]),
  record("system", "spiffe://.*", "spike/system/.*", ["super"]),
];

function pathFor(op: Operation): string | undefined {
  return op.startsWith("secret.") && op !== "secret.list"
    ? "tenants/acme/db"
    : undefined;
}

/** The ops `who` passes with the given engine, as a sorted list. */
function allowedOps(who: Who, engine: PolicyEngine): Operation[] {
  return ALL_OPS.filter((op) => authorize(IDS[who], op, pathFor(op), engine));
}

Deno.test("authorize: role table without any policy", () => {
  withDefaultTrustRoots(() => {
    const engine = new PolicyEngine();
    const expected: Record<Who, Operation[]> = {
      superuser: DATA_OPS,
      recover: ["operator.recover"],
      restore: ["operator.restore"],
      bootstrap: ["bootstrap.verify"],
      lite: CIPHER_OPS,
      nexus: [],
      keeper: [],
      workload: [],
    };
    for (const who of Object.keys(IDS) as Who[]) {
      assert.deepEqual(allowedOps(who, engine), expected[who], who);
    }
  });
});

Deno.test("authorize: role table with a policy granting super on everything to everyone", () => {
  withDefaultTrustRoots(() => {
    const engine = engineWith(...GRANT_ALL);
    const expected: Record<Who, Operation[]> = {
      superuser: DATA_OPS,
      recover: ["operator.recover"],
      restore: ["operator.restore"],
      bootstrap: ["bootstrap.verify"],
      lite: CIPHER_OPS,
      nexus: DATA_OPS,
      keeper: DATA_OPS,
      workload: DATA_OPS,
    };
    for (const who of Object.keys(IDS) as Who[]) {
      assert.deepEqual(allowedOps(who, engine), expected[who], who);
    }
  });
});

Deno.test("authorize: a .* policy grants every secret but no policy, list or cipher right", () => {
  withDefaultTrustRoots(() => {
    const engine = engineWith(GRANT_ALL[0]!);
    for (const who of ["nexus", "keeper", "workload"] as const) {
      assert.deepEqual(
        allowedOps(who, engine),
        SECRET_OPS.filter((op) => op !== "secret.list"),
        who,
      );
    }
  });
});

Deno.test("authorize: superuser cannot recover, restore or verify bootstrap", () => {
  withDefaultTrustRoots(() => {
    for (const op of ROLE_OPS) {
      assert.equal(
        authorize(IDS.superuser, op, undefined, engineWith(...GRANT_ALL)),
        false,
        op,
      );
    }
  });
});

Deno.test("authorize: recover identity cannot read secrets even with a matching policy", () => {
  withDefaultTrustRoots(() => {
    const engine = engineWith(
      record("rec", "spiffe://spike\\.ist/spike/pilot/role/recover", ".*", [
        "read",
      ]),
    );
    assert.equal(authorize(IDS.recover, "secret.get", "a", engine), false);
    assert.equal(
      authorize(IDS.recover, "operator.restore", undefined, engine),
      false,
    );
    assert.equal(
      authorize(IDS.recover, "operator.recover", undefined, engine),
      true,
    );
  });
});

Deno.test("authorize: sub-ids carry their role, look-alikes do not", () => {
  withDefaultTrustRoots(() => {
    const engine = new PolicyEngine();
    assert.equal(
      authorize(`${IDS.recover}/host-1`, "operator.recover", undefined, engine),
      true,
    );
    assert.equal(
      authorize(`${IDS.superuser}/alice`, "secret.list", undefined, engine),
      true,
    );
    assert.equal(
      authorize(`${IDS.recover}x`, "operator.recover", undefined, engine),
      false,
    );
    assert.equal(
      authorize(`${IDS.superuser}x`, "secret.list", undefined, engine),
      false,
    );
    assert.equal(
      authorize(
        "spiffe://evil.org/spike/pilot/role/superuser",
        "secret.get",
        "a",
        engine,
      ),
      false,
    );
    assert.equal(
      authorize(`${IDS.lite}/app`, "cipher.encrypt", undefined, engine),
      true,
    );
  });
});

Deno.test("authorize: trust roots from the environment decide roles", () => {
  withDefaultTrustRoots(() => {
    Deno.env.set("SPIKE_TRUST_ROOT_PILOT", "acme.org");
    try {
      const engine = new PolicyEngine();
      const acme = "spiffe://acme.org/spike/pilot/role/superuser";
      assert.equal(authorize(acme, "policy.list", undefined, engine), true);
      assert.equal(
        authorize(IDS.superuser, "policy.list", undefined, engine),
        false,
      );
    } finally {
      Deno.env.delete("SPIKE_TRUST_ROOT_PILOT");
    }
  });
});

Deno.test("authorize: a verified ID's roles are looked up once, a new connection's ID afresh", () => {
  withDefaultTrustRoots(() => {
    const engine = new PolicyEngine();
    const acme = "spiffe://acme.org/spike/pilot/role/superuser";
    Deno.env.set("SPIKE_TRUST_ROOT_PILOT", "acme.org");
    try {
      // The server hands every request on a connection the same object.
      const connection = parseSpiffeId(acme);
      assert.equal(
        authorize(connection, "policy.list", undefined, engine),
        true,
      );
      Deno.env.set("SPIKE_TRUST_ROOT_PILOT", "spike.ist");
      assert.equal(
        authorize(connection, "policy.list", undefined, engine),
        true,
      );
      assert.equal(authorize(acme, "policy.list", undefined, engine), false);
    } finally {
      Deno.env.delete("SPIKE_TRUST_ROOT_PILOT");
    }
  });
});

Deno.test("authorize: lite workload is denied secrets and policies even with a matching policy", () => {
  withDefaultTrustRoots(() => {
    const engine = engineWith(...GRANT_ALL);
    for (const op of [...SECRET_OPS, ...POLICY_OPS]) {
      assert.equal(authorize(IDS.lite, op, pathFor(op), engine), false, op);
    }
  });
});

Deno.test("authorize: workload passes exactly what its policies grant", () => {
  withDefaultTrustRoots(() => {
    const app = "spiffe://spike\\.ist/workload/app1";
    const engine = engineWith(
      record("read acme", app, "tenants/acme/.*", ["read"]),
      record("write db", app, "tenants/acme/db", ["write"]),
      record("lister", app, "spike/system/secret", ["list"]),
      record("cipher", app, "spike/system/cipher/exec", ["execute"]),
      record("acl reader", app, "spike/system/acl", ["read", "list"]),
    );
    const id = IDS.workload;
    const can = (op: Operation, path?: string) =>
      authorize(id, op, path, engine);
    assert.equal(can("secret.get", "tenants/acme/db"), true);
    assert.equal(can("secret.metadata", "tenants/acme/other"), true);
    assert.equal(can("secret.get", "tenants/beta/db"), false);
    assert.equal(can("secret.get", "tenants/acme"), false);
    assert.equal(can("secret.put", "tenants/acme/db"), true);
    assert.equal(can("secret.delete", "tenants/acme/db"), true);
    assert.equal(can("secret.undelete", "tenants/acme/db"), true);
    assert.equal(can("secret.put", "tenants/acme/other"), false);
    assert.equal(can("secret.list"), true);
    assert.equal(can("cipher.encrypt"), true);
    assert.equal(can("cipher.decrypt"), true);
    assert.equal(can("policy.get"), true);
    assert.equal(can("policy.list"), true);
    assert.equal(can("policy.put"), false);
    assert.equal(can("policy.delete"), false);
    for (const op of ROLE_OPS) assert.equal(can(op), false, op);
    assert.equal(
      authorize(IDS.nexus, "secret.get", "tenants/acme/db", engine),
      false,
    );
    assert.equal(
      authorize(`${IDS.workload}0`, "secret.get", "tenants/acme/db", engine),
      false,
    );
  });
});

Deno.test("authorize: system permissions come only from the system paths", () => {
  withDefaultTrustRoots(() => {
    const app = "spiffe://spike\\.ist/workload/app1";
    const engine = engineWith(record("acme", app, "tenants/.*", ["super"]));
    for (const op of [...POLICY_OPS, ...CIPHER_OPS, "secret.list" as const]) {
      assert.equal(authorize(IDS.workload, op, "tenants/x", engine), false, op);
    }
    const cipherOnly = engineWith(
      record("c", app, SYSTEM_PATHS.cipher, ["write", "read"]),
    );
    assert.equal(
      authorize(IDS.workload, "cipher.encrypt", undefined, cipherOnly),
      false,
    );
  });
});

Deno.test("authorize: secret ops never reach reserved paths and need a path", () => {
  withDefaultTrustRoots(() => {
    const engine = engineWith(...GRANT_ALL);
    for (const who of ["superuser", "workload"] as const) {
      for (
        const path of ["spike/system/acl", "spike/system", "spike/system/x"]
      ) {
        assert.equal(authorize(IDS[who], "secret.put", path, engine), false);
        assert.equal(authorize(IDS[who], "secret.get", path, engine), false);
      }
      assert.equal(authorize(IDS[who], "secret.get", undefined, engine), false);
    }
  });
});

Deno.test("authorize: accepts parsed ids and denies invalid ones", () => {
  withDefaultTrustRoots(() => {
    const engine = engineWith(...GRANT_ALL);
    assert.equal(
      authorize(parseSpiffeId(IDS.superuser), "policy.put", undefined, engine),
      true,
    );
    assert.equal(
      authorize(parseSpiffeId(IDS.workload), "secret.get", "a", engine),
      true,
    );
    for (
      const bad of [
        "",
        "spiffe://",
        "https://spike.ist/workload/app1",
        "spiffe://spike.ist/a//b",
      ]
    ) {
      assert.equal(authorize(bad, "secret.get", "a", engine), false, bad);
      assert.equal(
        authorize(bad, "cipher.encrypt", undefined, engine),
        false,
        bad,
      );
    }
  });
});

Deno.test("secretListGrant: superuser sees all, workloads their list grants, others none", () => {
  withDefaultTrustRoots(() => {
    const app = "spiffe://spike\\.ist/workload/app1";
    const engine = engineWith(
      record("lister", app, "spike/system/secret", ["list"]),
      record("acme", app, "tenants/acme/.*", ["list"]),
      record("beta read", app, "tenants/beta/.*", ["read"]),
    );
    const paths = ["tenants/acme/db", "tenants/beta/db", "z"];
    const visible = (grant: ListGrant | undefined) =>
      grant === undefined ? paths : paths.filter((p) => grant.allows(p));
    assert.equal(secretListGrant(IDS.superuser, engine), undefined);
    const workload = secretListGrant(IDS.workload, engine)!;
    assert.deepEqual(visible(workload), ["tenants/acme/db"]);
    // The listing reads only the ranges of the list grants' literal
    // prefixes (the gate's range holds no secret: it is reserved).
    assert.deepEqual(workload.prefixes, [
      "spike/system/secret",
      "tenants/acme/",
    ]);
    const noGate = engineWith(record("acme", app, "tenants/acme/.*", ["list"]));
    for (
      const [who, policies] of [
        [IDS.lite, engineWith(...GRANT_ALL)],
        [IDS.recover, engineWith(...GRANT_ALL)],
        [IDS.workload, noGate],
        ["not an id", engine],
      ] as const
    ) {
      const grant = secretListGrant(who, policies)!;
      assert.deepEqual(visible(grant), []);
      assert.deepEqual(grant.prefixes, []);
    }
  });
});
