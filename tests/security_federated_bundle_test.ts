// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The attack of issue 10, item 1, against real nexus and keeper processes
// on SVID files. spiffe-helper's include_federated_domains appends every
// federated CA to svid_bundle.pem; one without a SPIFFE ID used to become
// an anchor of the local trust domain. Its owner minted a superuser leaf
// that read secrets and a nexus leaf that pulled the keepers' shards.
// Now such a CA anchors nothing (logged once), while a trust domain named
// in SPIKE_FEDERATED_BUNDLES works as federation should.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import { createDevCa, issueSvid, writeSvidDir } from "../scripts/dev_ca.ts";
import {
  attempt,
  waitFor,
  waitForKeeperShards,
} from "./reliability_support.ts";

const TD = "spike.ist";

Deno.test("a federated CA without a SPIFFE ID appended to svid_bundle.pem mints nothing", async (t) => {
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  // The other side of a federation, or anyone whose CA reached the file.
  const hostile = await createDevCa("evil.example", { withoutSpiffeId: true });
  const partner = await createDevCa("partner.example");
  const partnerFile = `${cluster.dir}/partner.example.pem`;
  await Deno.writeTextFile(partnerFile, partner.cert.toString("pem"));
  cluster.options.nexusEnv.SPIKE_FEDERATED_BUNDLES =
    `partner.example=${partnerFile}`;
  const append = async (name: string) => {
    const file = `${cluster.svidDir(name)}/svid_bundle.pem`;
    await Deno.writeTextFile(
      file,
      await Deno.readTextFile(file) + hostile.cert.toString("pem") +
        partner.cert.toString("pem"),
    );
  };
  for (const name of ["nexus", "keeper-1", "keeper-2", "keeper-3"]) {
    await append(name);
  }
  const mint = async (name: string, id: string) => {
    const dir = cluster.svidDir(name);
    await writeSvidDir(dir, await issueSvid(hostile, id), [hostile]);
    return dir;
  };
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    const put = await cluster.call("superuser", "/v1/store/secrets", {
      path: "apps/db",
      values: { password: "s3cret" },
    });
    assert.equal(put.status, 200);
    await waitForKeeperShards(cluster);

    await t.step(
      "a minted superuser cannot read or write secrets",
      async () => {
        const dir = await mint(
          "minted-superuser",
          `spiffe://${TD}/spike/pilot/role/superuser`,
        );
        const read = await attempt(
          `${cluster.nexusUrl}/v1/store/secrets?action=get`,
          dir,
          { path: "apps/db" },
        );
        assert.equal(read.kind, "refused", JSON.stringify(read));
        const write = await attempt(
          `${cluster.nexusUrl}/v1/store/secrets`,
          dir,
          {
            path: "apps/db",
            values: { password: "owned" },
          },
        );
        assert.equal(write.kind, "refused", JSON.stringify(write));
      },
    );

    await t.step("a minted nexus gets no shard from any keeper", async () => {
      const dir = await mint("minted-nexus", `spiffe://${TD}/spike/nexus`);
      for (const i of [1, 2, 3]) {
        const shard = await attempt(
          `${cluster.keeperUrl(i)}/v1/store/shard`,
          dir,
          {},
        );
        assert.equal(
          shard.kind,
          "refused",
          `keeper ${i}: ${JSON.stringify(shard)}`,
        );
        const overwrite = await attempt(
          `${cluster.keeperUrl(i)}/v1/store/contribute`,
          dir,
          { shard: Array(32).fill(9), index: i },
        );
        assert.equal(overwrite.kind, "refused", `keeper ${i}`);
      }
    });

    await t.step("the store and the keepers are untouched", async () => {
      await cluster.stopNexus();
      await cluster.startNexus();
      await cluster.waitUnlocked();
      const got = await cluster.call(
        "superuser",
        "/v1/store/secrets?action=get",
        { path: "apps/db" },
      );
      assert.deepEqual(got.body?.data, { password: "s3cret" });
    });

    await t.step("the ignored CA is logged once per process", async () => {
      const log = cluster.keepers.get(1)!.logFile;
      const ignored = async () =>
        (await Deno.readTextFile(log)).split("\n").filter((line) =>
          line.includes("Ignoring a CA of svid_bundle.pem") &&
          line.includes("no SPIFFE ID")
        ).length;
      await waitFor("the warning", async () => await ignored() === 1);
      // A re-read of the same files does not repeat it.
      const bundle = `${cluster.svidDir("keeper-1")}/svid_bundle.pem`;
      const text = await Deno.readTextFile(bundle);
      await Deno.writeTextFile(`${bundle}.tmp`, text);
      await Deno.rename(`${bundle}.tmp`, bundle);
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(await ignored(), 1);
      // Keepers federate with nobody: the partner CA is ignored there too.
      assert.match(
        await Deno.readTextFile(log),
        /names trust domain \\"partner\.example\\", which is not federated/,
      );
    });

    await t.step(
      "a trust domain named in SPIKE_FEDERATED_BUNDLES is trusted",
      async () => {
        const partnerId = "spiffe://partner.example/workload/billing";
        const policy = await cluster.call("superuser", "/v1/acl/policy", {
          name: "partner-billing",
          spiffeidPattern: "^spiffe://partner\\.example/workload/billing$",
          pathPattern: "apps/.*",
          permissions: ["read"],
        });
        assert.equal(policy.status, 200);
        const dir = cluster.svidDir("partner");
        await writeSvidDir(dir, await issueSvid(partner, partnerId), [partner]);
        const read = await attempt(
          `${cluster.nexusUrl}/v1/store/secrets?action=get`,
          dir,
          { path: "apps/db" },
        );
        assert.equal(read.kind, "answer", JSON.stringify(read));
        assert.deepEqual(
          (read as { body: Record<string, unknown> }).body.data,
          { password: "s3cret" },
        );
        // Federation is per process: keepers did not federate.
        const shard = await attempt(
          `${cluster.keeperUrl(1)}/v1/store/shard`,
          dir,
          {},
        );
        assert.equal(shard.kind, "refused");
      },
    );
  } finally {
    await cluster.close();
  }
});
