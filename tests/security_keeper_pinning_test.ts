// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The attack of issue 10, item 5, against real processes: a keeper SVID
// that answers at another keeper's URL (one compromised keeper host, or a
// DNS entry pointed at it) collects that keeper's share too, and with it
// the threshold. SPIKE_NEXUS_KEEPER_PEERS can pin each keeper's SPIFFE ID
// (`https://host:port#spiffe://td/spike/keeper/n`); nexus then refuses a
// keeper presenting another ID. Plain URLs keep working.
import assert from "node:assert/strict";
import { ConfigError } from "../lib/config/env.ts";
import { readNexusConfig } from "../modes/nexus/config.ts";
import { Cluster } from "../scripts/cluster.ts";
import { withEnv } from "./env_support.ts";
import { sleep, waitFor } from "./reliability_support.ts";

const KEEPER = (n: number) => `spiffe://spike.ist/spike/keeper/${n}`;

function peersOf(cluster: Cluster, pins: (string | undefined)[]): string {
  return pins.map((pin, i) =>
    pin === undefined
      ? cluster.keeperUrl(i + 1)
      : `${cluster.keeperUrl(i + 1)}#${pin}`
  ).join(",");
}

Deno.test("a keeper pinned in SPIKE_NEXUS_KEEPER_PEERS cannot be impersonated by another keeper", async (t) => {
  const cluster = await Cluster.create({
    keepers: 3,
    threshold: 2,
    keeperUpdateInterval: "500ms",
  });
  try {
    // Keepers 1 and 2 are pinned; keeper 3 is a plain URL.
    cluster.options.nexusEnv.SPIKE_NEXUS_KEEPER_PEERS = peersOf(cluster, [
      KEEPER(1),
      KEEPER(2),
      undefined,
    ]);
    // At keeper 2's address answers a real keeper with keeper 3's identity.
    await cluster.issue("keeper-2", KEEPER(3));
    await cluster.start();
    await cluster.waitUnlocked();
    const put = await cluster.call("superuser", "/v1/store/secrets", {
      path: "apps/db",
      values: { password: "s3cret" },
    });
    assert.equal(put.status, 200);

    await t.step("nexus gives the impostor no share", async () => {
      await waitFor("nexus to refuse the impostor", async () => {
        const log = await Deno.readTextFile(cluster.nexus!.logFile);
        return log.includes("A keeper presented another SPIFFE ID than pinned");
      });
      await sleep(1_500); // several push rounds
      const held = await cluster.request(
        "nexus",
        `${cluster.keeperUrl(2)}/v1/store/shard`,
        {},
        "keeper",
      );
      assert.equal(held.status, 404, JSON.stringify(held.body));
      const status = await cluster.call("superuser", "/v1/operator/status", {
        probe: true,
      });
      const keepers = status.body?.keepers as {
        holdsShard: boolean | null;
        lastError: string | null;
      }[];
      assert.match(
        keepers[1]!.lastError ?? "",
        /spike\/keeper\/3 is not authorized: keeper https:\/\/127\.0\.0\.1:\d+ is pinned to spiffe:\/\/spike\.ist\/spike\/keeper\/2/,
      );
      assert.notEqual(keepers[1]!.holdsShard, true);
      assert.equal(keepers[0]!.holdsShard, true);
      assert.equal(keepers[2]!.holdsShard, true);
      const log = await Deno.readTextFile(cluster.nexus!.logFile);
      const line = log.split("\n").find((l) => l.includes("than pinned"))!;
      assert.equal(JSON.parse(line).presented, KEEPER(3));
    });

    await t.step("the real keeper 2 is taken once it answers", async () => {
      await cluster.stopKeeper(2);
      await cluster.issue("keeper-2", KEEPER(2));
      await cluster.startKeeper(2);
      await waitFor("keeper 2 to get its shard", async () => {
        const held = await cluster.request(
          "nexus",
          `${cluster.keeperUrl(2)}/v1/store/shard`,
          {},
          "keeper",
        );
        return held.status === 200 && held.body?.index === 2;
      });
    });

    await t.step(
      "a pin outside the keeper trust roots stops nexus",
      async () => {
        await cluster.stopNexus();
        cluster.options.nexusEnv.SPIKE_NEXUS_KEEPER_PEERS = peersOf(cluster, [
          "spiffe://other.example/spike/keeper/1",
          KEEPER(2),
          KEEPER(3),
        ]);
        await cluster.startNexus({ mayExit: true });
        assert.equal((await cluster.nexus!.status).code, 2);
        assert.match(
          await Deno.readTextFile(cluster.nexus!.logFile),
          /SPIKE_NEXUS_KEEPER_PEERS pins spiffe:\/\/other\.example\/spike\/keeper\/1 for https:\/\/127\.0\.0\.1:\d+, which is not a keeper identity here: keepers are trusted in "spike\.ist"/,
        );
      },
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("SPIKE_NEXUS_KEEPER_PEERS reads pins after # and refuses bad ones", async () => {
  const base = {
    SPIKE_NEXUS_BACKEND_STORE: "sqlite",
    SPIKE_NEXUS_DATA_DIR: "/tmp/spike-pin-test",
    SPIKE_NEXUS_SHAMIR_SHARES: "2",
    SPIKE_NEXUS_SHAMIR_THRESHOLD: "2",
  };
  await withEnv({
    ...base,
    SPIKE_NEXUS_KEEPER_PEERS: `https://k1:8443/#${KEEPER(1)}, https://k2:8443`,
  }, () => {
    assert.deepEqual(readNexusConfig().keeperPeers, [
      { url: "https://k1:8443", spiffeId: KEEPER(1) },
      { url: "https://k2:8443", spiffeId: undefined },
    ]);
  });
  const bad: [string, RegExp][] = [
    [
      `https://k1:8443#spiffe://spike.ist/spike/nexus,https://k2:8443`,
      /pins "spiffe:\/\/spike\.ist\/spike\/nexus", which is not a keeper ID/,
    ],
    [
      `https://k1:8443#keeper-1,https://k2:8443`,
      /pins "keeper-1", which is not a SPIFFE ID/,
    ],
    [
      `https://k1:8443#${KEEPER(1)},https://k2:8443#${KEEPER(1)}`,
      /pins spiffe:\/\/spike\.ist\/spike\/keeper\/1 twice/,
    ],
    [
      `https://k1:8443#${KEEPER(1)},https://k1:8443#${KEEPER(2)}`,
      /lists "https:\/\/k1:8443" twice/,
    ],
  ];
  for (const [peers, pattern] of bad) {
    await withEnv({ ...base, SPIKE_NEXUS_KEEPER_PEERS: peers }, () => {
      assert.throws(
        readNexusConfig,
        (e: unknown) =>
          e instanceof ConfigError &&
          /^SPIKE_NEXUS_KEEPER_PEERS /.test(e.message) &&
          pattern.test(e.message),
        peers,
      );
    });
  }
});
