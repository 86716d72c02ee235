// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * End-to-end tests of the data API on the persistent backend: secrets and
 * policies survive a nexus restart, stored blobs are neither readable in
 * the file nor openable through the cipher API, and a locked nexus answers
 * 503 on every data route until it has its root key again.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  ApiFixture,
  expectStatus,
  TD,
  waitForStatus,
} from "./nexus_api_support.ts";

const SECRETS = "/v1/store/secrets";
const GET = "/v1/store/secrets?action=get";
const VALUE = "correct-horse-battery-staple";

Deno.test("nexus data API on sqlite with keepers", async (t) => {
  const api = await ApiFixture.create({
    backend: "sqlite",
    keepers: 3,
    threshold: 2,
  }, { app: `spiffe://${TD}/workload/app` });
  const su = (route: string, body: unknown = {}, type?: string) =>
    api.post("superuser", route, body, type);
  let shards: Record<string, number[]> = {};
  try {
    await t.step("writes secrets and policies", async () => {
      expectStatus(
        await su(SECRETS, { path: "apps/db", values: { pass: VALUE } }),
        200,
      );
      expectStatus(
        await su("/v1/acl/policy", {
          name: "app-read",
          spiffeidPattern: `^spiffe://spike\\.ist/workload/app$`,
          pathPattern: "apps/.*",
          permissions: ["read"],
        }),
        200,
      );
      expectStatus(await api.post("app", GET, { path: "apps/db" }), 200);
      const recover = await api.post("recover", "/v1/operator/recover");
      expectStatus(recover, 200);
      shards = recover.json?.shards as Record<string, number[]>;
      assert.equal(Object.keys(shards).length, 3);
    });

    let blob: Uint8Array = new Uint8Array();
    await t.step("the database holds no plaintext", async () => {
      await api.cluster.stopNexus("SIGTERM");
      const file = `${api.cluster.dataDir}/spike.db`;
      for await (const entry of Deno.readDir(api.cluster.dataDir)) {
        const bytes = await Deno.readFile(
          `${api.cluster.dataDir}/${entry.name}`,
        );
        const text = new TextDecoder("latin1").decode(bytes);
        assert.equal(text.includes(VALUE), false, entry.name);
        assert.equal(text.includes("apps/.*"), false, entry.name);
      }
      const db = new DatabaseSync(file, { readOnly: true });
      try {
        const row = db.prepare(
          "SELECT head FROM secrets WHERE path = ?",
        ).get("apps/db") as { head: Uint8Array } | undefined;
        // A record is format byte, 4-byte term, then nonce ‖ ciphertext.
        blob = new Uint8Array(row!.head).slice(5);
      } finally {
        db.close();
      }
      assert.ok(blob.length > 28);
    });

    await t.step("secrets and policies survive a restart", async () => {
      await api.cluster.startNexus();
      await waitForStatus(api, (s) => s !== 503);
      const answer = await su(GET, { path: "apps/db" });
      expectStatus(answer, 200);
      assert.deepEqual(answer.json?.data, { pass: VALUE });
      const app = await api.post("app", GET, { path: "apps/db" });
      expectStatus(app, 200);
      expectStatus(
        await api.post("app", SECRETS, { path: "apps/db", values: {} }),
        401,
      );
    });

    await t.step("the cipher API cannot open a stored blob", async () => {
      const stream = new Uint8Array([1, ...blob]);
      expectStatus(
        await su("/v1/cipher/decrypt", stream, "application/octet-stream"),
        400,
        "api_bad_request",
      );
      expectStatus(
        await su("/v1/cipher/decrypt", {
          version: 1,
          nonce: blob.slice(0, 12).toBase64(),
          ciphertext: blob.slice(12).toBase64(),
        }),
        400,
        "api_bad_request",
      );
    });

    await t.step("a locked nexus answers 503 on every data route", async () => {
      await api.cluster.stopNexus();
      for (const i of [1, 2, 3]) await api.cluster.stopKeeper(i);
      await api.cluster.startNexus();
      const routes: [string, unknown, string?][] = [
        [SECRETS, { path: "apps/db", values: { pass: "x" } }],
        [GET, { path: "apps/db" }],
        ["/v1/store/secrets?action=delete", { path: "apps/db" }],
        ["/v1/store/secrets?action=undelete", { path: "apps/db" }],
        ["/v1/store/secrets?action=list", {}],
        ["/v1/store/secrets/metadata?action=get", { path: "apps/db" }],
        ["/v1/acl/policy", {
          name: "p",
          spiffeidPattern: "spiffe://x/y",
          pathPattern: "a",
          permissions: ["read"],
        }],
        ["/v1/acl/policy?action=get", { id: "app-read" }],
        ["/v1/acl/policy?action=delete", { id: "app-read" }],
        ["/v1/acl/policy?action=list", {}],
        ["/v1/cipher/encrypt", { plaintext: "aGk=" }],
        ["/v1/cipher/decrypt", new Uint8Array(40), "application/octet-stream"],
      ];
      for (const who of ["superuser", "app"]) {
        for (const [route, body, type] of routes) {
          const answer = await api.post(who, route, body, type);
          assert.equal(answer.status, 503, `${who} ${route}`);
          assert.equal(answer.json?.err, "state_not_ready");
        }
      }
      expectStatus(await su("/v1/nope"), 400, "api_bad_request");
    });

    await t.step("after a restore the data is back", async () => {
      for (const id of ["1", "3"]) {
        const answer = await api.post("restore", "/v1/operator/restore", {
          id: Number(id),
          shard: shards[id],
        });
        expectStatus(answer, 200);
      }
      await waitForStatus(api, (s) => s !== 503);
      const answer = await su(GET, { path: "apps/db" });
      expectStatus(answer, 200);
      assert.deepEqual(answer.json?.data, { pass: VALUE });
      expectStatus(await api.post("app", GET, { path: "apps/db" }), 200);
    });
  } finally {
    await api.close();
  }
});
