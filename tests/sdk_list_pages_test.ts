// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `Spike.list({ prefix, pageSize })` against a nexus that lists by prefix
 * and in pages (store format 2: `{"prefix", "after", "limit"}` in, `{"keys",
 * "next"}` out): the SDK asks for the prefix, follows every `next` and
 * returns each path once. The audit log shows that nexus, not the SDK,
 * filtered and paged.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Spike } from "../sdk/mod.ts";
import { auditRecords, policyFor, startSdkCluster, TD } from "./sdk_support.ts";

const APP = `spiffe://${TD}/workload/lister`;

Deno.test("workload SDK: list by prefix follows nexus's pages", async () => {
  const cluster = await startSdkCluster({ lister: APP }, [
    policyFor("lister-rw", APP, "apps/.*", ["read", "write", "list"]),
    policyFor("lister-list", APP, "spike/system/secret", ["list"]),
  ]);
  const spike = await Spike.connect({
    nexusUrl: cluster.nexusUrl,
    source: { svidDir: cluster.svidDir("lister") },
  });
  try {
    const inside = Array.from({ length: 7 }, (_, i) => `apps/p/s${i}`);
    for (const path of [...inside, "apps/q/a", "apps/pz", "apps/o"]) {
      await spike.put(path, { k: "v" });
    }
    const before = (await auditRecords(cluster)).length;
    assert.deepEqual(
      await spike.list({ prefix: "apps/p/", pageSize: 2 }),
      inside,
    );
    const pages = (await auditRecords(cluster)).slice(before)
      .filter((r) => r.caller === APP && r.action === "list");
    assert.equal(pages.length, 4, "7 paths in pages of 2");
    assert.deepEqual(await spike.list({ pageSize: 3 }), [
      "apps/o",
      ...inside,
      "apps/pz",
      "apps/q/a",
    ]);
  } finally {
    await spike.close();
    await cluster.close();
  }
});
