// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The workload SDK against a real cluster (keepers, nexus on SQLite) under
 * workload policies: every secret and cipher call, the typed errors, and
 * that no value ever shows up in an error message.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  Spike,
  SpikeBadRequestError,
  SpikeConflictError,
  SpikeDeniedError,
  SpikeError,
  SpikeNotFoundError,
  zero,
} from "../sdk/mod.ts";
import {
  auditRecords,
  eventually,
  policyFor,
  startSdkCluster,
  TD,
} from "./sdk_support.ts";

const APP = `spiffe://${TD}/workload/app`;
const OTHER = `spiffe://${TD}/workload/other`;

Deno.test("workload SDK: secrets and cipher under a workload policy", async (t) => {
  const cluster = await startSdkCluster(
    { app: APP, other: OTHER },
    [
      policyFor("app-rw", APP, "apps/app/.*", ["read", "write", "list"]),
      policyFor("app-list", APP, "spike/system/secret", ["list"]),
      policyFor("app-cipher", APP, "spike/system/cipher/exec", ["execute"]),
      policyFor("other-list", OTHER, "spike/system/secret", ["list"]),
    ],
  );
  const spike = await Spike.connect({
    nexusUrl: cluster.nexusUrl,
    source: { svidDir: cluster.svidDir("app") },
  });
  const other = await Spike.connect({
    nexusUrl: cluster.nexusUrl,
    source: { svidDir: cluster.svidDir("other") },
  });
  const tricky = 'pä"ss\\w\n\u0001\u{1F511}/end';
  try {
    await t.step("identity is the workload's", () => {
      assert.equal(spike.spiffeId, APP);
    });

    await t.step(
      "put then get: bytes by default, text when asked",
      async () => {
        await spike.put("apps/app/db", { user: "orders", password: tricky });
        using secret = await spike.get("apps/app/db");
        assert.deepEqual(secret.keys(), ["password", "user"]);
        assert.equal(secret.text("password"), tricky);
        assert.deepEqual(
          secret.bytes("password"),
          new TextEncoder().encode(tricky),
        );
        assert.deepEqual(secret.toRecord(), {
          user: "orders",
          password: tricky,
        });
        const bytes = await spike.getValue("apps/app/db", "password");
        assert.ok(bytes instanceof Uint8Array);
        assert.equal(new TextDecoder().decode(bytes), tricky);
        zero(bytes);
        assert.ok(bytes.every((b) => b === 0));
        assert.equal(
          await spike.getValue("apps/app/db", "user", { as: "text" }),
          "orders",
        );
      },
    );

    await t.step("a secret zeroes its bytes", async () => {
      const secret = await spike.get("apps/app/db");
      const view = secret.bytes("password")!;
      secret.zero();
      assert.ok(view.every((b) => b === 0));
      assert.equal(secret.keys().length, 0);
    });

    await t.step("byte values are written without strings", async () => {
      const raw = new TextEncoder().encode("bytes \u00e9 \t value");
      await spike.put("apps/app/bytes", { v: raw });
      assert.equal(
        await spike.getValue("apps/app/bytes", "v", { as: "text" }),
        "bytes \u00e9 \t value",
      );
      await assert.rejects(
        spike.put("apps/app/bytes", { v: new Uint8Array([0xff, 0x00]) }),
        (e: unknown) =>
          e instanceof SpikeBadRequestError && e.code === "data_invalid_input",
      );
    });

    await t.step("versions, metadata, delete and undelete", async () => {
      await spike.put("apps/app/db", { user: "orders", password: "second" });
      const meta = await spike.metadata("apps/app/db");
      assert.equal(meta.currentVersion, 2);
      assert.equal(meta.oldestVersion, 1);
      assert.deepEqual(meta.versions.map((v) => v.version), [1, 2]);
      assert.ok(meta.createdTime instanceof Date);
      assert.equal(meta.versions[0]!.deletedTime, null);
      using v1 = await spike.get("apps/app/db", { version: 1 });
      assert.equal(v1.text("password"), tricky);
      assert.equal(v1.version, 1);

      await spike.delete("apps/app/db", { versions: [2] });
      assert.equal(
        await spike.getValue("apps/app/db", "password", { as: "text" }),
        tricky,
      );
      const afterDelete = await spike.metadata("apps/app/db");
      assert.equal(afterDelete.currentVersion, 1);
      assert.ok(afterDelete.versions[1]!.deletedTime instanceof Date);
      await spike.undelete("apps/app/db", { versions: [2] });
      assert.equal(
        await spike.getValue("apps/app/db", "password", { as: "text" }),
        "second",
      );
      await spike.delete("apps/app/db");
      await spike.delete("apps/app/db");
      await assert.rejects(spike.get("apps/app/db"), SpikeNotFoundError);
      // With every version deleted, the default undelete revives the newest.
      await spike.undelete("apps/app/db");
      assert.equal(
        await spike.getValue("apps/app/db", "password", { as: "text" }),
        "second",
      );
    });

    await t.step("compare-and-set writes and conflicts", async () => {
      await spike.put("apps/app/cas", { n: "1" }, { cas: 0 });
      await spike.put("apps/app/cas", { n: "2" }, { cas: 1 });
      const error = await spike.put("apps/app/cas", { n: "x" }, { cas: 1 })
        .catch((e) => e);
      assert.ok(error instanceof SpikeConflictError);
      assert.equal(error.name, "SpikeConflictError");
      assert.equal(error.code, "api_conflict");
      assert.equal(error.status, 409);
      assert.equal(
        await spike.getValue("apps/app/cas", "n", { as: "text" }),
        "2",
      );
    });

    await t.step("list shows the paths the workload may list", async () => {
      await cluster.call("superuser", "/v1/store/secrets", {
        path: "elsewhere/hidden",
        values: { k: "v" },
      });
      const paths = await spike.list();
      assert.deepEqual(paths, [
        "apps/app/bytes",
        "apps/app/cas",
        "apps/app/db",
      ]);
      assert.deepEqual(await spike.list({ prefix: "apps/app/c" }), [
        "apps/app/cas",
      ]);
      assert.deepEqual(await other.list(), []);
    });

    await t.step(
      "watch waits for the secret, then yields each version",
      async () => {
        const stop = new AbortController();
        const seen: string[] = [];
        const watching = (async () => {
          for await (
            using secret of spike.watch("apps/app/watched", {
              intervalMs: 50,
              signal: stop.signal,
            })
          ) {
            seen.push(`${secret.version}:${secret.text("v")}`);
            if (seen.length === 3) stop.abort();
          }
        })();
        await new Promise((r) => setTimeout(r, 200));
        assert.deepEqual(seen, []);
        for (const [i, v] of ["a", "b", "c"].entries()) {
          await spike.put("apps/app/watched", { v });
          await eventually(() => seen.length === i + 1, `version ${i + 1}`);
        }
        await watching;
        assert.deepEqual(seen, ["1:a", "2:b", "3:c"]);
      },
    );

    await t.step("cipher on bytes and streams", async () => {
      const data = crypto.getRandomValues(new Uint8Array(4096));
      const sealed = await spike.encrypt(data);
      assert.equal(sealed[0], 1);
      assert.equal(sealed.length, 1 + 12 + data.length + 16);
      assert.deepEqual(await spike.decrypt(sealed), data);
      const stream = await spike.encryptStream(
        ReadableStream.from([data.subarray(0, 100), data.subarray(100)]),
      );
      const plain = await spike.decryptStream(stream);
      assert.deepEqual(
        new Uint8Array(await new Response(plain).arrayBuffer()),
        data,
      );
      sealed[sealed.length - 1]! ^= 1;
      await assert.rejects(spike.decrypt(sealed), SpikeBadRequestError);
      await assert.rejects(
        spike.encryptStream(ReadableStream.from([data]), { maxBytes: 100 }),
        SpikeBadRequestError,
      );
      await assert.rejects(other.encrypt(data), SpikeDeniedError);
    });

    await t.step(
      "denial is typed, carries the code and is not retried",
      async () => {
        const before = (await auditRecords(cluster)).length;
        const error = await other.get("apps/app/db").catch((e) => e);
        assert.ok(error instanceof SpikeDeniedError);
        assert.ok(error instanceof SpikeError);
        assert.equal(error.name, "SpikeDeniedError");
        assert.equal(error.code, "access_unauthorized");
        assert.equal(error.status, 401);
        assert.match(error.message, /workload\/other/);
        const records = (await auditRecords(cluster)).slice(before)
          .filter((r) => r.caller === OTHER);
        assert.equal(records.length, 1, "a denial is sent once");
        await assert.rejects(
          other.put("apps/app/db", { password: "stolen" }),
          SpikeDeniedError,
        );
      },
    );

    await t.step("not found is typed", async () => {
      const error = await spike.get("apps/app/nope").catch((e) => e);
      assert.ok(error instanceof SpikeNotFoundError);
      assert.equal(error.code, "api_not_found");
      assert.equal(error.status, 404);
      await assert.rejects(
        spike.getValue("apps/app/db", "nokey"),
        SpikeNotFoundError,
      );
      await assert.rejects(
        spike.get("apps/app/db", { version: 99 }),
        SpikeNotFoundError,
      );
    });

    await t.step("invalid requests are typed bad requests", async () => {
      const error = await spike.get("apps/app/<bad>").catch((e) => e);
      assert.ok(error instanceof SpikeBadRequestError);
      assert.equal(error.code, "api_bad_request");
      await assert.rejects(
        spike.get("apps/app/db", { version: -1 }),
        SpikeBadRequestError,
      );
    });

    await t.step("no value appears in any error message", async () => {
      const errors: unknown[] = [];
      for (
        const call of [
          () => other.get("apps/app/db"),
          () => other.put("apps/app/db", { password: tricky }),
          () => spike.put("apps/app/db", { password: tricky }, { cas: 99 }),
          () => spike.getValue("apps/app/db", "nokey"),
          () => spike.put("apps/app/<x>", { password: tricky }),
        ]
      ) {
        errors.push(await call().catch((e) => e));
      }
      for (const error of errors) {
        assert.ok(error instanceof SpikeError);
        assert.ok(!error.message.includes("pä"), error.message);
        assert.ok(!String(error.stack).includes("pä"));
      }
    });
  } finally {
    await spike.close();
    await other.close();
    await cluster.close();
  }
});
