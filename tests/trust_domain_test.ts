// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Issue 11, point 4: a cluster in a trust domain other than spike.ist.
// Without SPIKE_TRUST_ROOT every mode trusts its own SVID's trust domain
// and says so once; with a SPIKE_TRUST_ROOT that does not list it, each
// mode refuses in one sentence naming the variable and the value to set.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import { withEnv } from "./env_support.ts";
import { waitFor } from "./reliability_support.ts";

/**
 * Runs `fn` with the test process itself (its mTLS calls to nexus) trusting
 * example.org; the SPIKE processes see only the environment they are given.
 */
function asHarness(fn: () => Promise<void>): () => Promise<void> {
  return () => withEnv({ SPIKE_TRUST_ROOT: TD }, fn);
}

const TD = "example.org";
const ADOPTED = "SPIKE_TRUST_ROOT is not set: SPIKE roles are trusted";

async function linesOf(file: string, text: string): Promise<string[]> {
  return (await Deno.readTextFile(file)).split("\n").filter((l) =>
    l.includes(text)
  );
}

Deno.test(
  "a cluster in example.org works without SPIKE_TRUST_ROOT and says so once",
  asHarness(async () => {
    const cluster = await Cluster.create({
      keepers: 2,
      threshold: 2,
      trustDomain: TD,
    });
    try {
      await cluster.start();
      await cluster.waitUnlocked();
      const put = await cluster.pilot("superuser", [
        "secret",
        "put",
        "apps/db",
        "password=s3cret",
      ]);
      assert.equal(put.code, 0, put.stderr);
      const get = await cluster.pilot("superuser", [
        "secret",
        "get",
        "apps/db",
        "password",
      ]);
      assert.equal(get.stdout, "s3cret\n");
      const recover = await cluster.pilot("recover", ["operator", "recover"]);
      assert.equal(recover.code, 0, recover.stderr);
      const denied = await cluster.pilot("superuser", ["operator", "recover"]);
      assert.equal(denied.code, 4);
      assert.match(
        denied.stderr,
        /spiffe:\/\/example\.org\/spike\/pilot\/role\/recover/,
      );
      for (const proc of [cluster.nexus!, ...cluster.keepers.values()]) {
        await waitFor(
          "the trust domain line",
          async () => (await linesOf(proc.logFile, ADOPTED)).length > 0,
        );
        const lines = await linesOf(proc.logFile, ADOPTED);
        assert.equal(lines.length, 1, lines.join("\n"));
        assert.match(lines[0]!, /"level":"WARN"/);
        assert.match(lines[0]!, /set SPIKE_TRUST_ROOT=example\.org/);
      }
    } finally {
      await cluster.close();
    }
  }),
);

Deno.test(
  "a SPIKE_TRUST_ROOT without the SVID's trust domain is refused with the value to set",
  asHarness(async () => {
    const cluster = await Cluster.create({
      keepers: 2,
      threshold: 2,
      trustDomain: TD,
    });
    try {
      cluster.options.nexusEnv.SPIKE_TRUST_ROOT = "spike.ist";
      await cluster.startNexus({ mayExit: true });
      const stopped = await cluster.nexus!.status;
      assert.equal(stopped.code, 1);
      const log = await Deno.readTextFile(cluster.nexus!.logFile);
      assert.match(
        log,
        /This SVID \(spiffe:\/\/example\.org\/spike\/nexus\) is in trust domain "example\.org", but SPIKE_TRUST_ROOT is "spike\.ist": set SPIKE_TRUST_ROOT=example\.org/,
      );

      cluster.options.keeperEnv.SPIKE_TRUST_ROOT_KEEPER = "spike.ist";
      await assert.rejects(cluster.startKeeper(1));
      const keeperLog = await Deno.readTextFile(
        cluster.keepers.get(1)!.logFile,
      );
      assert.match(
        keeperLog,
        /but SPIKE_TRUST_ROOT_KEEPER is "spike\.ist": set SPIKE_TRUST_ROOT_KEEPER=example\.org/,
      );

      delete cluster.options.nexusEnv.SPIKE_TRUST_ROOT;
      delete cluster.options.keeperEnv.SPIKE_TRUST_ROOT_KEEPER;
      await cluster.start();
      await cluster.waitUnlocked();
      const pilot = await cluster.pilot("superuser", ["secret", "list"], {
        env: { SPIKE_TRUST_ROOT: "spike.ist" },
      });
      assert.equal(pilot.code, 6, pilot.stderr);
      assert.match(
        pilot.stderr,
        /spiffe:\/\/example\.org\/spike\/nexus is not authorized: nexus must be spike\/nexus in a trust domain of "spike\.ist" \(from SPIKE_TRUST_ROOT\)/,
      );
    } finally {
      await cluster.close();
    }
  }),
);
