// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Paginated, prefixed lists end to end: the wire shapes of
 * `POST /v1/store/secrets?action=list` and `/v1/acl/policy?action=list`
 * (upstream's answer without page fields, keyset pages with them, the
 * server's page maximum, bad fields refused), and `spike pilot secret list
 * [prefix]` / `policy list` following pages past the maximum, showing a
 * workload only what its policies let it list.
 */
import assert from "node:assert/strict";
import { MAX_LIST_PAGE } from "../lib/wire/list_page.ts";
import { Cluster } from "../scripts/cluster.ts";
import { SpikeClient } from "../scripts/spike_client.ts";
import { fails, ok } from "./pilot_e2e_support.ts";

const LIST = "/v1/store/secrets?action=list";
const POLICY = "/v1/acl/policy";
const WEB = 600;
const DB = 550;

const pad = (i: number) => String(i).padStart(4, "0");
const POLICY_NAMES = [
  "extra-0",
  "extra-1",
  "extra-2",
  "extra-3",
  "extra-4",
  "web-gate",
  "web-list",
];

Deno.test("secret and policy lists page by keyset, and pilot follows the pages", async (t) => {
  const cluster = await Cluster.create({ backend: "memory", logLevel: "WARN" });
  try {
    await cluster.issue("web", "spiffe://spike.ist/workload/web");
    await cluster.start();
    await cluster.waitUnlocked();
    const su = await SpikeClient.open(
      cluster.svidDir("superuser"),
      cluster.nexusUrl,
    );
    const all: string[] = [];
    try {
      const puts: Promise<unknown>[] = [];
      for (let i = 0; i < WEB; i++) all.push(`apps/web/${pad(i)}`);
      for (let i = 0; i < DB; i++) all.push(`apps/db/${pad(i)}`);
      all.push("other/x");
      for (const path of all) {
        puts.push(su.post("/v1/store/secrets", { path, values: { k: "v" } }));
        if (puts.length >= 32) await Promise.all(puts.splice(0));
      }
      await Promise.all(puts);
      all.sort();
      const policies: [string, string, string[]][] = [
        ["web-gate", "spike/system/secret", ["list"]],
        ["web-list", "apps/web/.*", ["list", "read"]],
      ];
      for (let i = 0; i < 5; i++) {
        policies.push([`extra-${i}`, `x/${i}`, ["read"]]);
      }
      for (const [name, pathPattern, permissions] of policies) {
        const res = await su.post(POLICY, {
          name,
          spiffeidPattern: name.startsWith("web")
            ? "^spiffe://spike\\.ist/workload/web$"
            : "spiffe://spike\\.ist/none",
          pathPattern,
          permissions,
        });
        assert.equal(res.status, 200);
      }

      await t.step(
        "no page field: upstream's whole list, no cursor",
        async () => {
          const res = await su.post(LIST, {});
          assert.equal(res.status, 200);
          assert.deepEqual(res.json, { keys: all });
        },
      );

      await t.step(
        "pages: keys in order and the cursor of the next",
        async () => {
          const first = await su.post(LIST, { limit: 2 });
          assert.deepEqual(first.json, { keys: all.slice(0, 2), next: all[1] });
          const second = await su.post(LIST, { limit: 2, after: all[1] });
          assert.deepEqual(second.json, {
            keys: all.slice(2, 4),
            next: all[3],
          });
          const prefixed = await su.post(LIST, {
            prefix: "apps/web/",
            after: "apps/web/0597",
          });
          assert.deepEqual(prefixed.json, {
            keys: ["apps/web/0598", "apps/web/0599"],
          });
          // Only a prefix: the default page of 100.
          const page = await su.post(LIST, { prefix: "apps/db/" });
          assert.equal((page.json!.keys as string[]).length, 100);
          assert.equal(page.json!.next, "apps/db/0099");
          // Above the maximum: cut to it.
          const big = await su.post(LIST, { limit: 5000 });
          assert.equal((big.json!.keys as string[]).length, MAX_LIST_PAGE);
          assert.equal(big.json!.next, all[MAX_LIST_PAGE - 1]);
          // null is "not given", as in upstream's Go decoding.
          const nulls = await su.post(LIST, {
            prefix: null,
            after: null,
            limit: null,
          });
          assert.deepEqual(nulls.json, { keys: all });
        },
      );

      await t.step("bad page fields are a 400 and list nothing", async () => {
        for (
          const body of [
            { limit: 0 },
            { limit: -1 },
            { limit: 1.5 },
            { limit: "10" },
            { prefix: 7 },
            { after: ["a"] },
            { prefix: "caf\u00e9" },
            { prefix: "a".repeat(501) },
          ]
        ) {
          const res = await su.post(LIST, body);
          assert.equal(res.status, 400, JSON.stringify(body));
          assert.equal(res.json!.err, "api_bad_request");
        }
      });

      await t.step(
        "policy list pages the same way, with upstream's filters",
        async () => {
          const whole = await su.post(`${POLICY}?action=list`, {});
          assert.deepEqual(
            whole.json,
            { policies: POLICY_NAMES.map((name) => ({ id: "", name })) },
          );
          const page = await su.post(`${POLICY}?action=list`, {
            limit: 3,
            after: "extra-0",
          });
          assert.deepEqual(page.json, {
            policies: ["extra-1", "extra-2", "extra-3"].map((name) => ({
              id: "",
              name,
            })),
            next: "extra-3",
          });
          const filtered = await su.post(`${POLICY}?action=list`, {
            pathPattern: "x/3",
            prefix: "extra",
          });
          assert.deepEqual(filtered.json, {
            policies: [{ id: "", name: "extra-3" }],
          });
          const byPrefix = await su.post(`${POLICY}?action=list`, {
            prefix: "web",
          });
          assert.deepEqual(
            (byPrefix.json!.policies as { name: string }[]).map((p) => p.name),
            ["web-gate", "web-list"],
          );
        },
      );
    } finally {
      await su.close();
    }

    await t.step(
      "pilot secret list follows pages past the maximum",
      async () => {
        const listed = JSON.parse(
          ok(
            await cluster.pilot("superuser", ["secret", "list", "-f", "json"]),
            "list",
          ),
        );
        assert.ok(all.length > MAX_LIST_PAGE);
        assert.deepEqual(listed, all);
        const web = JSON.parse(
          ok(
            await cluster.pilot("superuser", [
              "secret",
              "list",
              "apps/web/",
              "-f",
              "json",
            ]),
            "list prefix",
          ),
        );
        assert.deepEqual(web, all.filter((p) => p.startsWith("apps/web/")));
        assert.equal(
          ok(
            await cluster.pilot("superuser", ["secret", "list", "nothing/"]),
            "list none",
          ),
          'No secrets found under "nothing/".\n',
        );
        fails(
          await cluster.pilot("superuser", ["secret", "list", "a", "b"]),
          2,
          /./,
        );
      },
    );

    await t.step(
      "a workload lists only what its policies let it list",
      async () => {
        const listed = JSON.parse(
          ok(
            await cluster.pilot("web", ["secret", "list", "-f", "json"]),
            "web",
          ),
        );
        assert.equal(listed.length, WEB);
        assert.deepEqual(listed, all.filter((p) => p.startsWith("apps/web/")));
        assert.equal(
          ok(await cluster.pilot("web", ["secret", "list", "apps/db/"]), "web"),
          'No secrets found under "apps/db/".\n',
        );
        const page = await cluster.call("web", LIST, {
          limit: 3,
          after: "apps/",
        });
        assert.deepEqual(page.body, {
          keys: ["apps/web/0000", "apps/web/0001", "apps/web/0002"],
          next: "apps/web/0002",
        });
      },
    );

    await t.step("pilot policy list follows pages", async () => {
      const names = JSON.parse(
        ok(
          await cluster.pilot("superuser", ["policy", "list", "-f", "json"]),
          "policy list",
        ),
      );
      assert.deepEqual(names, POLICY_NAMES);
    });
  } finally {
    await cluster.close();
  }
});
