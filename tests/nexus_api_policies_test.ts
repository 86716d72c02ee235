// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * End-to-end tests of the policy routes and of policy-based access for
 * workloads, against a real nexus process (memory backend) over mTLS.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ApiFixture, expectStatus, TD } from "./nexus_api_support.ts";

const SECRETS = "/v1/store/secrets";
const GET = "/v1/store/secrets?action=get";
const DELETE = "/v1/store/secrets?action=delete";
const LIST = "/v1/store/secrets?action=list";
const METADATA = "/v1/store/secrets/metadata?action=get";
const POLICY = "/v1/acl/policy";
const POLICY_GET = "/v1/acl/policy?action=get";
const POLICY_DELETE = "/v1/acl/policy?action=delete";
const POLICY_LIST = "/v1/acl/policy?action=list";
const POLICY_CREATE = "/v1/acl/policy?action=create";
const APP_ID = `^spiffe://spike\\.ist/workload/app$`;

Deno.test("nexus policy API and workload access over mTLS", async (t) => {
  const api = await ApiFixture.create({ backend: "memory", keepers: 1 }, {
    app: `spiffe://${TD}/workload/app`,
    other: `spiffe://${TD}/workload/other`,
    appchild: `spiffe://${TD}/workload/app/child`,
  });
  const su = (route: string, body: unknown = {}) =>
    api.post("superuser", route, body);
  const app = (route: string, body: unknown = {}) =>
    api.post("app", route, body);
  const policy = (
    name: string,
    pathPattern: string,
    permissions: string[],
    spiffeidPattern = APP_ID,
  ) => su(POLICY, { name, spiffeidPattern, pathPattern, permissions });
  const names = async (filter: unknown = {}) => {
    const answer = await su(POLICY_LIST, filter);
    expectStatus(answer, 200);
    return (answer.json?.policies as { id: string; name: string }[])
      .map((p) => {
        assert.equal(p.id, "");
        return p.name;
      }).sort();
  };
  try {
    for (const [path, v] of [["apps/app/db", "a"], ["apps/other/db", "o"]]) {
      expectStatus(await su(SECRETS, { path, values: { v: v! } }), 200);
    }
    for (const path of ["tenants/acme/db", "acme"]) {
      expectStatus(await su(SECRETS, { path, values: { v: "acme" } }), 200);
    }

    await t.step("a workload is denied until a policy grants it", async () => {
      expectStatus(
        await app(GET, { path: "apps/app/db" }),
        401,
        "access_unauthorized",
      );
      expectStatus(await policy("app-read", "apps/app/.*", ["read"]), 200);
      const answer = await app(GET, { path: "apps/app/db" });
      expectStatus(answer, 200);
      assert.deepEqual(answer.json?.data, { v: "a" });
      expectStatus(await app(METADATA, { path: "apps/app/db" }), 200);
    });

    await t.step(
      "read does not grant write, delete or other paths",
      async () => {
        for (
          const [route, body] of [
            [SECRETS, { path: "apps/app/db", values: { v: "x" } }],
            [DELETE, { path: "apps/app/db" }],
            [GET, { path: "apps/other/db" }],
            [GET, { path: "apps/app" }],
            [LIST, {}],
            [POLICY_LIST, {}],
          ] as const
        ) {
          expectStatus(await app(route, body), 401, "access_unauthorized");
        }
        expectStatus(
          await api.post("other", GET, { path: "apps/app/db" }),
          401,
          "access_unauthorized",
        );
        // The ID pattern is anchored at both ends: a longer ID is another ID.
        expectStatus(
          await api.post("appchild", GET, { path: "apps/app/db" }),
          401,
          "access_unauthorized",
        );
        const answer = await su(GET, { path: "apps/app/db" });
        assert.deepEqual(answer.json?.data, { v: "a" });
      },
    );

    await t.step(
      "a write grant allows put and delete on its paths only",
      async () => {
        expectStatus(await policy("app-write", "apps/app/.*", ["write"]), 200);
        expectStatus(
          await app(SECRETS, { path: "apps/app/db", values: { v: "b" } }),
          200,
        );
        expectStatus(
          await app(SECRETS, { path: "apps/other/db", values: { v: "x" } }),
          401,
          "access_unauthorized",
        );
        expectStatus(
          await app(SECRETS, { path: "apps/app/new", values: {} }),
          200,
        );
        expectStatus(await app(DELETE, { path: "apps/app/new" }), 200);
        const other = await su(GET, { path: "apps/other/db" });
        assert.deepEqual(other.json?.data, { v: "o" });
      },
    );

    await t.step(
      "a bare word pattern does not match as a substring",
      async () => {
        expectStatus(await policy("acme", "acme", ["read"]), 200);
        expectStatus(
          await app(GET, { path: "tenants/acme/db" }),
          401,
          "access_unauthorized",
        );
        const exact = await app(GET, { path: "acme" });
        expectStatus(exact, 200);
        assert.deepEqual(exact.json?.data, { v: "acme" });
      },
    );

    await t.step(
      "list needs list on spike/system/secret, then is filtered",
      async () => {
        expectStatus(await policy("app-list", "apps/app/.*", ["list"]), 200);
        expectStatus(await app(LIST), 401, "access_unauthorized");
        expectStatus(
          await policy("app-list-api", "spike/system/secret", ["list"]),
          200,
        );
        const mine = await app(LIST);
        expectStatus(mine, 200);
        // Paths whose versions are all deleted are listed too, as upstream.
        assert.deepEqual(mine.json?.keys, ["apps/app/db", "apps/app/new"]);
        const all = await su(LIST);
        assert.deepEqual(all.json?.keys, [
          "acme",
          "apps/app/db",
          "apps/app/new",
          "apps/other/db",
          "tenants/acme/db",
        ]);
        expectStatus(await api.post("other", LIST), 401, "access_unauthorized");
      },
    );

    await t.step("policy get returns upstream's shape", async () => {
      const answer = await su(POLICY_GET, { id: "app-read" });
      expectStatus(answer, 200);
      const body = answer.json!;
      assert.equal(body.id, "");
      assert.equal(body.name, "app-read");
      assert.equal(body.spiffeidPattern, APP_ID);
      assert.equal(body.spiffiedPattern, APP_ID);
      assert.equal(body.pathPattern, "apps/app/.*");
      assert.deepEqual(body.permissions, ["read"]);
      assert.equal(typeof body.createdAt, "string");
      assert.equal(typeof body.updatedAt, "string");
      const byName = await su(POLICY_GET, { name: "app-read" });
      assert.deepEqual(byName.json, body);
    });

    await t.step(
      "an upsert replaces the policy and keeps createdAt",
      async () => {
        const before = (await su(POLICY_GET, { id: "acme" })).json!;
        await new Promise((r) => setTimeout(r, 5));
        expectStatus(
          await policy("acme", "tenants/acme/.*", ["read", "read"]),
          200,
        );
        const after = (await su(POLICY_GET, { id: "acme" })).json!;
        assert.equal(after.createdAt, before.createdAt);
        assert.notEqual(after.updatedAt, before.updatedAt);
        assert.equal(after.pathPattern, "tenants/acme/.*");
        assert.deepEqual(after.permissions, ["read"]);
        expectStatus(await app(GET, { path: "tenants/acme/db" }), 200);
        expectStatus(
          await app(GET, { path: "acme" }),
          401,
          "access_unauthorized",
        );
      },
    );

    await t.step("policy list filters by exact pattern strings", async () => {
      assert.deepEqual(await names(), [
        "acme",
        "app-list",
        "app-list-api",
        "app-read",
        "app-write",
      ]);
      assert.deepEqual(await names({ pathPattern: "apps/app/.*" }), [
        "app-list",
        "app-read",
        "app-write",
      ]);
      assert.deepEqual(await names({ pathPattern: "apps/app/" }), []);
      assert.deepEqual(await names({ spiffeidPattern: APP_ID }), [
        "acme",
        "app-list",
        "app-list-api",
        "app-read",
        "app-write",
      ]);
      assert.deepEqual(
        await names({ spiffeidPattern: "spiffe://spike\\.ist/workload/app" }),
        [],
      );
      expectStatus(await su(POLICY_LIST, { pathPattern: 3 }), 400);
    });

    await t.step("unknown policies are 404 on get and delete", async () => {
      expectStatus(
        await su(POLICY_GET, { id: "missing" }),
        404,
        "api_not_found",
      );
      expectStatus(
        await su(POLICY_DELETE, { id: "missing" }),
        404,
        "api_not_found",
      );
    });

    await t.step("invalid policies are 400 and store nothing", async () => {
      const bad = [
        { pathPattern: "(" },
        { pathPattern: "(a+)+" },
        { pathPattern: "(.*)*" },
        { pathPattern: "(a|a)*" },
        { pathPattern: "(a)\\1" },
        { pathPattern: "a{1,5000}" },
        { pathPattern: "(?=a)" },
        { pathPattern: "a b" },
        { pathPattern: "" },
        { pathPattern: "x".repeat(501) },
        { spiffeidPattern: "spiffe://spike\\.ist/(a+)+" },
        { spiffeidPattern: ".*" },
        { spiffeidPattern: "spiffe://[" },
        { permissions: [] },
        { permissions: ["admin"] },
        { permissions: "read" },
        { name: "bad/name" },
        { name: "" },
      ];
      for (const change of bad) {
        const body = {
          name: "bad-one",
          spiffeidPattern: APP_ID,
          pathPattern: "apps/.*",
          permissions: ["read"],
          ...change,
        };
        const answer = await su(POLICY, body);
        assert.equal(
          answer.status,
          400,
          `${JSON.stringify(change).slice(0, 60)} -> ${answer.status}`,
        );
        assert.equal(answer.json?.err, "api_bad_request");
      }
      expectStatus(await su(POLICY_GET, { id: "bad-one" }), 404);
      expectStatus(await su(POLICY_GET, { id: "bad/name" }), 400);
      expectStatus(await su(POLICY_GET, {}), 400);
      expectStatus(await su(POLICY_GET, { id: "a", name: "b" }), 400);
      assert.equal((await names()).length, 5);
    });

    await t.step("policies cannot be written without acl rights", async () => {
      expectStatus(
        await app(POLICY, {
          name: "self-grant",
          spiffeidPattern: APP_ID,
          pathPattern: ".*",
          permissions: ["super"],
        }),
        401,
        "access_unauthorized",
      );
      expectStatus(await su(POLICY_GET, { id: "self-grant" }), 404);
    });

    await t.step(
      "create refuses a taken name with 409 and needs only write on the acl",
      async () => {
        const body = {
          name: "created",
          spiffeidPattern: APP_ID,
          pathPattern: "^apps/app/.*$",
          permissions: ["read"],
        };
        expectStatus(await su(POLICY_CREATE, body), 200);
        const again = await su(POLICY_CREATE, {
          ...body,
          permissions: ["super"],
        });
        expectStatus(again, 409, "api_conflict");
        const stored = await su(POLICY_GET, { id: "created" });
        assert.deepEqual(stored.json?.permissions, ["read"]);
        // The upsert route still replaces, as upstream's does.
        expectStatus(await su(POLICY, { ...body, permissions: ["list"] }), 200);
        // A delegate with write (no list) on spike/system/acl can create.
        expectStatus(
          await policy("app-acl-write", "spike/system/acl", ["write"]),
          200,
        );
        expectStatus(
          await app(POLICY_CREATE, { ...body, name: "by-delegate" }),
          200,
        );
        expectStatus(
          await app(POLICY_CREATE, { ...body, name: "by-delegate" }),
          409,
          "api_conflict",
        );
        for (const name of ["created", "by-delegate", "app-acl-write"]) {
          expectStatus(await su(POLICY_DELETE, { id: name }), 200);
        }
      },
    );

    await t.step(
      "acl rights on spike/system/acl delegate policy reads",
      async () => {
        expectStatus(
          await policy("app-acl-read", "spike/system/acl", ["read", "list"]),
          200,
        );
        expectStatus(await app(POLICY_GET, { id: "app-read" }), 200);
        expectStatus(await app(POLICY_LIST), 200);
        expectStatus(
          await app(POLICY_DELETE, { id: "app-read" }),
          401,
          "access_unauthorized",
        );
        // A path pattern that merely contains "system" reaches nothing reserved.
        expectStatus(await policy("sys-word", "system", ["super"]), 200);
        expectStatus(
          await app(POLICY_DELETE, { id: "app-read" }),
          401,
          "access_unauthorized",
        );
      },
    );

    await t.step("deleting a policy ends its grant at once", async () => {
      expectStatus(await su(POLICY_DELETE, { id: "app-read" }), 200);
      expectStatus(
        await app(GET, { path: "apps/app/db" }),
        401,
        "access_unauthorized",
      );
      expectStatus(await su(POLICY_GET, { id: "app-read" }), 404);
      // The write grant is a separate policy and still holds.
      expectStatus(
        await app(SECRETS, { path: "apps/app/db", values: { v: "c" } }),
        200,
      );
    });
  } finally {
    await api.close();
  }
});
