// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The attack of issue 10, item 4, against a real nexus: a superuser grants
// a workload "all secrets" with the path pattern `.*`. The workload reads
// and writes every secret, but gets no policy administration, no cipher
// and no global list, so it cannot grant itself `super`. A policy that
// names `spike/system/...` literally still grants those rights.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";

const WORKLOAD = "spiffe://spike.ist/workload/reporting";
const POLICY = "/v1/acl/policy";

Deno.test("a .* policy grants all secrets but not the reserved spike/system paths", async (t) => {
  const cluster = await Cluster.create({ keepers: 2, threshold: 2 });
  try {
    await cluster.issue("workload", WORKLOAD);
    await cluster.start();
    await cluster.waitUnlocked();
    const su = (route: string, body: unknown) =>
      cluster.call("superuser", route, body);
    const app = (route: string, body: unknown) =>
      cluster.call("workload", route, body);
    assert.equal(
      (await su("/v1/store/secrets", {
        path: "apps/db",
        values: { password: "s3cret" },
      })).status,
      200,
    );
    assert.equal(
      (await su(POLICY, {
        name: "reporting-all-secrets",
        spiffeidPattern: "^spiffe://spike\\.ist/workload/reporting$",
        pathPattern: ".*",
        permissions: ["read", "write"],
      })).status,
      200,
    );

    await t.step("the workload reads and writes every secret", async () => {
      const got = await app("/v1/store/secrets?action=get", {
        path: "apps/db",
      });
      assert.equal(got.status, 200);
      assert.deepEqual(got.body?.data, { password: "s3cret" });
      const put = await app("/v1/store/secrets", {
        path: "apps/report",
        values: { k: "v" },
      });
      assert.equal(put.status, 200);
    });

    await t.step(
      "it cannot grant itself super or administer policies",
      async () => {
        const escalate = await app(POLICY, {
          name: "reporting-super",
          spiffeidPattern: "^spiffe://spike\\.ist/workload/reporting$",
          pathPattern: ".*",
          permissions: ["super"],
        });
        assert.equal(escalate.status, 401);
        assert.equal(escalate.body?.err, "access_unauthorized");
        for (
          const [route, body] of [
            [`${POLICY}?action=list`, {}],
            [`${POLICY}?action=get`, { id: "reporting-all-secrets" }],
            [`${POLICY}?action=delete`, { id: "reporting-all-secrets" }],
            ["/v1/store/secrets?action=list", {}],
            ["/v1/cipher/encrypt", { plaintext: "aGk=" }],
          ] as const
        ) {
          const res = await app(route, body);
          assert.equal(res.status, 401, route);
        }
        const policies = await su(`${POLICY}?action=list`, {});
        const names = (policies.body?.policies as { name: string }[]).map((p) =>
          p.name
        );
        assert.deepEqual(names, ["reporting-all-secrets"]);
      },
    );

    await t.step(
      "a policy naming spike/system literally still grants",
      async () => {
        assert.equal(
          (await su(POLICY, {
            name: "reporting-acl",
            spiffeidPattern: "^spiffe://spike\\.ist/workload/reporting$",
            pathPattern: "spike/system/acl",
            permissions: ["list"],
          })).status,
          200,
        );
        assert.equal((await app(`${POLICY}?action=list`, {})).status, 200);
        assert.equal(
          (await app(POLICY, {
            name: "still-no-write",
            spiffeidPattern: "^spiffe://spike\\.ist/workload/other$",
            pathPattern: ".*",
            permissions: ["read"],
          })).status,
          401,
        );
      },
    );
  } finally {
    await cluster.close();
  }
});
