// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * End-to-end tests of the secret routes and of the request handling every
 * route shares, against a real nexus process (memory backend) over mTLS.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Answer,
  ApiFixture,
  expectStatus,
  rawRequest,
  TD,
} from "./nexus_api_support.ts";

const PUT = "/v1/store/secrets";
const GET = "/v1/store/secrets?action=get";
const DELETE = "/v1/store/secrets?action=delete";
const UNDELETE = "/v1/store/secrets?action=undelete";
const LIST = "/v1/store/secrets?action=list";
const METADATA = "/v1/store/secrets/metadata?action=get";

function data(answer: Answer): unknown {
  expectStatus(answer, 200);
  return answer.json?.data;
}

Deno.test("nexus secret API over mTLS", async (t) => {
  const api = await ApiFixture.create({ backend: "memory", keepers: 1 }, {
    workload: `spiffe://${TD}/workload/app`,
  });
  const su = (route: string, body: unknown = {}) =>
    api.post("superuser", route, body);
  try {
    await t.step("put then get returns the values", async () => {
      expectStatus(
        await su(PUT, { path: "apps/db", values: { user: "u1", pass: "p1" } }),
        200,
      );
      assert.deepEqual(data(await su(GET, { path: "apps/db" })), {
        user: "u1",
        pass: "p1",
      });
    });

    await t.step(
      "a second put makes a new version; old stays readable",
      async () => {
        expectStatus(
          await su(PUT, { path: "apps/db", values: { user: "u2" } }),
          200,
        );
        assert.deepEqual(data(await su(GET, { path: "apps/db" })), {
          user: "u2",
        });
        assert.deepEqual(
          data(await su(GET, { path: "apps/db", version: 1 })),
          { user: "u1", pass: "p1" },
        );
        assert.deepEqual(
          data(await su(GET, { path: "apps/db", version: 2 })),
          { user: "u2" },
        );
        expectStatus(
          await su(GET, { path: "apps/db", version: 3 }),
          404,
          "api_not_found",
        );
      },
    );

    await t.step("metadata lists every version", async () => {
      const answer = await su(METADATA, { path: "apps/db" });
      expectStatus(answer, 200);
      const meta = answer.json?.metadata as Record<string, unknown>;
      assert.equal(meta.currentVersion, 2);
      assert.equal(meta.oldestVersion, 1);
      assert.equal(typeof meta.createdTime, "string");
      const versions = answer.json?.versions as Record<
        string,
        Record<string, unknown>
      >;
      assert.deepEqual(Object.keys(versions).sort(), ["1", "2"]);
      assert.equal(versions["1"]?.version, 1);
      assert.equal(versions["1"]?.deletedTime, null);
      expectStatus(await su(METADATA, { path: "nope" }), 404, "api_not_found");
    });

    await t.step(
      "delete hides a version; undelete brings it back",
      async () => {
        expectStatus(await su(DELETE, { path: "apps/db", versions: [2] }), 200);
        assert.deepEqual(data(await su(GET, { path: "apps/db" })), {
          user: "u1",
          pass: "p1",
        });
        expectStatus(
          await su(GET, { path: "apps/db", version: 2 }),
          404,
          "api_not_found",
        );
        const meta = await su(METADATA, { path: "apps/db" });
        const versions = meta.json?.versions as Record<
          string,
          Record<string, unknown>
        >;
        assert.equal(typeof versions["2"]?.deletedTime, "string");
        expectStatus(
          await su(UNDELETE, { path: "apps/db", versions: [2] }),
          200,
        );
        assert.deepEqual(data(await su(GET, { path: "apps/db" })), {
          user: "u2",
        });
        expectStatus(
          await su(UNDELETE, { path: "apps/db", versions: [2] }),
          404,
          "api_not_found",
        );
        expectStatus(await su(DELETE, { path: "nope" }), 404, "api_not_found");
      },
    );

    await t.step(
      "delete with no versions deletes the current one",
      async () => {
        expectStatus(await su(PUT, { path: "tmp/x", values: { a: "1" } }), 200);
        expectStatus(await su(DELETE, { path: "tmp/x" }), 200);
        expectStatus(await su(GET, { path: "tmp/x" }), 404, "api_not_found");
        expectStatus(await su(UNDELETE, { path: "tmp/x" }), 200);
        assert.deepEqual(data(await su(GET, { path: "tmp/x" })), { a: "1" });
      },
    );

    await t.step("list gives the superuser every path, sorted", async () => {
      expectStatus(await su(PUT, { path: "b/one", values: {} }), 200);
      const answer = await su(LIST);
      expectStatus(answer, 200);
      assert.deepEqual(answer.json?.keys, ["apps/db", "b/one", "tmp/x"]);
    });

    await t.step(
      "compare-and-set stores on a match, 409 otherwise",
      async () => {
        expectStatus(
          await su(PUT, { path: "cas/k", values: { v: "1" }, cas: 0 }),
          200,
        );
        expectStatus(
          await su(PUT, { path: "cas/k", values: { v: "x" }, cas: 0 }),
          409,
          "api_conflict",
        );
        expectStatus(
          await su(PUT, { path: "cas/k", values: { v: "x" }, cas: 5 }),
          409,
          "api_conflict",
        );
        expectStatus(
          await su(PUT, { path: "cas/k", values: { v: "2" }, cas: 1 }),
          200,
        );
        assert.deepEqual(data(await su(GET, { path: "cas/k" })), { v: "2" });
      },
    );

    await t.step(
      "keys with dots, as certificates and config files use, are stored",
      async () => {
        const values = { "tls.crt": "PEM-C", "tls.key": "PEM-K", ".env": "E" };
        expectStatus(await su(PUT, { path: "certs/web", values }), 200);
        assert.deepEqual(data(await su(GET, { path: "certs/web" })), values);
      },
    );

    await t.step("every bad input is 400 and changes nothing", async () => {
      const before = await su(METADATA, { path: "apps/db" });
      const bad: [string, unknown][] = [
        [PUT, { path: "apps/db", values: { "bad!key": "hunter2-secret" } }],
        [PUT, { path: "apps/db", values: { "..": "hunter2-secret" } }],
        [PUT, { path: "apps/db", values: { "": "v" } }],
        [PUT, { path: "apps/db", values: { k: 1 } }],
        [PUT, { path: "apps/db", values: { k: null } }],
        [PUT, { path: "apps/db", values: ["v"] }],
        [PUT, { path: "apps/db" }],
        [PUT, { path: "apps/db", values: { k: "v" }, cas: -1 }],
        [PUT, { path: "apps/db", values: { k: "v" }, cas: 1.5 }],
        [PUT, { path: "apps db", values: { k: "v" } }],
        [PUT, { path: "apps;db", values: { k: "v" } }],
        [PUT, { path: "/apps/db", values: { k: "v" } }],
        [PUT, { path: "apps/../db", values: { k: "v" } }],
        [PUT, { path: "a".repeat(501), values: { k: "v" } }],
        [PUT, { path: "", values: { k: "v" } }],
        [PUT, { path: 7, values: { k: "v" } }],
        [PUT, { path: "spike/system/acl", values: { k: "v" } }],
        [PUT, { path: "spike/system/mine", values: { k: "v" } }],
        [GET, { path: "apps/db", version: -1 }],
        [GET, { path: "apps/db", version: 1.5 }],
        [GET, { path: "apps/db", version: "1" }],
        [GET, { path: "spike/system/secret" }],
        [DELETE, { path: "apps/db", versions: [-1] }],
        [DELETE, { path: "apps/db", versions: [1.5] }],
        [DELETE, { path: "apps/db", versions: 1 }],
        [UNDELETE, { path: "apps/db", versions: ["1"] }],
        [METADATA, { path: "apps/db", version: -2 }],
        [METADATA, { path: "a b" }],
      ];
      for (const [route, body] of bad) {
        const answer = await su(route, body);
        assert.equal(
          answer.status,
          400,
          `${route} ${JSON.stringify(body).slice(0, 80)} -> ${answer.status}`,
        );
        assert.equal(answer.json?.err, "api_bad_request");
        // Beyond upstream: a reason names the rule, never the value.
        const reason = answer.json?.reason;
        assert.equal(typeof reason, "string", JSON.stringify(answer.json));
        assert.match(reason as string, /^[A-Z]/);
        assert.doesNotMatch(reason as string, /hunter2/);
      }
      const after = await su(METADATA, { path: "apps/db" });
      assert.deepEqual(after.json, before.json);
      assert.deepEqual(data(await su(GET, { path: "apps/db" })), {
        user: "u2",
      });
      const list = await su(LIST);
      assert.deepEqual(list.json?.keys, [
        "apps/db",
        "b/one",
        "cas/k",
        "certs/web",
        "tmp/x",
      ]);
    });

    await t.step("a 500 character path is fine, 501 is not", async () => {
      const path = "p/" + "a".repeat(498);
      expectStatus(await su(PUT, { path, values: { k: "v" } }), 200);
      assert.deepEqual(data(await su(GET, { path })), { k: "v" });
      expectStatus(await su(DELETE, { path }), 200);
    });

    await t.step("malformed bodies are 400", async () => {
      for (const body of ["{", "[]", "null", '"x"', "", '{"path":"a"} x']) {
        const answer = await su(GET, body);
        expectStatus(answer, 400, "api_bad_request");
        assert.match(String(answer.json?.reason), /JSON/);
      }
    });

    await t.step("non-POST methods are 405", async () => {
      for (const method of ["GET", "PUT", "DELETE"]) {
        const res = await rawRequest(
          `${api.cluster.nexusUrl}${GET}`,
          method,
          api.cluster.svidDir("superuser"),
        );
        assert.equal(res.status, 405);
        assert.deepEqual(JSON.parse(res.text), {
          err: "api_method_not_allowed",
        });
      }
    });

    await t.step("unknown routes and actions are 400", async () => {
      for (
        const route of [
          "/v1/nope",
          "/v1/store/secrets?action=read",
          "/v1/store/secrets/metadata",
          "/v1/store/secret",
          "/v1/auth/initialization?action=check",
        ]
      ) {
        const answer = await su(route, {});
        expectStatus(answer, 400, "api_bad_request");
        assert.equal(answer.json?.reason, "No route for this path and action");
      }
    });

    await t.step("a body over the request limit is 413", async () => {
      const big = JSON.stringify({
        path: "big/one",
        values: { k: "x".repeat(1_100_000) },
      });
      expectStatus(await su(PUT, big), 413, "api_entity_too_large");
      expectStatus(await su(GET, { path: "big/one" }), 404, "api_not_found");
    });

    await t.step("a value just under the limit is stored", async () => {
      const value = "y".repeat(1_000_000);
      expectStatus(
        await su(PUT, { path: "big/two", values: { k: value } }),
        200,
      );
      assert.deepEqual(data(await su(GET, { path: "big/two" })), { k: value });
    });

    await t.step(
      "keeper, recover, restore and nexus identities get 401",
      async () => {
        for (const who of ["keeper-1", "recover", "restore", "nexus"]) {
          for (
            const [route, body] of [
              [GET, { path: "apps/db" }],
              [PUT, { path: "apps/db", values: { k: "v" } }],
              [LIST, {}],
              [METADATA, { path: "apps/db" }],
              ["/v1/acl/policy?action=list", {}],
              ["/v1/cipher/encrypt", { plaintext: "aGk=" }],
            ] as const
          ) {
            const answer = await api.post(who, route, body);
            assert.equal(answer.status, 401, `${who} ${route}`);
            assert.equal(answer.json?.err, "access_unauthorized");
          }
        }
        assert.deepEqual(data(await su(GET, { path: "apps/db" })), {
          user: "u2",
        });
      },
    );

    await t.step(
      "a workload without a policy gets 401, even on list",
      async () => {
        for (
          const [route, body] of [
            [GET, { path: "apps/db" }],
            [PUT, { path: "apps/db", values: { k: "v" } }],
            [DELETE, { path: "apps/db" }],
            [UNDELETE, { path: "apps/db" }],
            [LIST, {}],
            [METADATA, { path: "apps/db" }],
          ] as const
        ) {
          expectStatus(
            await api.post("workload", route, body),
            401,
            "access_unauthorized",
          );
        }
      },
    );
  } finally {
    await api.close();
  }
});
