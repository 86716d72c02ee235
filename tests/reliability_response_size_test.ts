// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The attack of issue 10, item 3, against real processes: a fake keeper
// (a small TLS server in this test, with a keeper SVID from the test's own
// CA) answers every nexus call with gigabytes. Nexus reads at most a
// shard-sized answer, fails the call with a log line naming the keeper,
// keeps serving, and its resident memory stays within 50 MB of its resting
// level, measured from /proc (a bound, not a timing). Pilot gets the same
// protection against a fake nexus.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import {
  FakeServer,
  residentKib,
  sleep,
  waitFor,
} from "./reliability_support.ts";

/** The margin the issue allows over nexus's resting RSS. */
const MARGIN_KIB = 50 * 1024;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

Deno.test("a keeper answering gigabytes cannot grow nexus's memory", async () => {
  const cluster = await Cluster.create({
    keepers: 3,
    threshold: 2,
    keeperUpdateInterval: "1s",
  });
  let fake: FakeServer | undefined;
  try {
    // Keeper 3 is absent at first: nexus unlocks with keepers 1 and 2.
    await cluster.startKeeper(1);
    await cluster.startKeeper(2);
    await cluster.startNexus();
    await cluster.waitUnlocked();
    const put = await cluster.call("superuser", "/v1/store/secrets", {
      path: "apps/db",
      values: { password: "s3cret" },
    });
    assert.equal(put.status, 200);
    const pid = cluster.nexus!.pid;
    // Resting level: a few push rounds in, with the keeper refusing.
    await sleep(2_000);
    const rest: number[] = [];
    for (let i = 0; i < 10; i++) {
      rest.push(await residentKib(pid));
      await sleep(100);
    }
    const resting = median(rest);

    fake = await FakeServer.start(
      cluster.svidDir("keeper-3"),
      cluster.keeperPorts[2]!,
      "huge",
    );
    const peaks: number[] = [];
    const started = fake;
    await waitFor(
      "six calls to the fake keeper, both kinds of answer",
      async () => {
        peaks.push(await residentKib(pid));
        return started.connections.filter((c) => c.closedAt !== undefined)
          .length >= 6;
      },
      60_000,
      100,
    );
    for (let i = 0; i < 10; i++) {
      peaks.push(await residentKib(pid));
      await sleep(100);
    }
    const peak = Math.max(...peaks);
    console.log(
      `nexus RSS: resting ${resting} KiB, peak under attack ${peak} KiB, ` +
        `the fake keeper handed TLS ${fake.sent} bytes`,
    );
    assert.ok(
      peak - resting < MARGIN_KIB,
      `nexus grew by ${peak - resting} KiB (resting ${resting} KiB)`,
    );
    assert.ok(cluster.nexus!.running, "nexus died");
    const got = await cluster.call(
      "superuser",
      "/v1/store/secrets?action=get",
      { path: "apps/db" },
    );
    assert.deepEqual(got.body?.data, { password: "s3cret" });
    const log = await Deno.readTextFile(cluster.nexus!.logFile);
    const lines = log.split("\n").filter((l) =>
      l.includes("Response too large")
    );
    assert.ok(lines.length >= 2, log.slice(-2000));
    for (const line of lines) {
      const entry = JSON.parse(line);
      assert.equal(entry.peer, cluster.keeperUrl(3));
      assert.equal(entry.limit, 4096);
    }
    const status = await cluster.call("superuser", "/v1/operator/status");
    const keepers = status.body?.keepers as { lastError: string | null }[];
    assert.match(keepers[2]!.lastError ?? "", /larger than 4096 bytes/);
  } finally {
    await fake?.close();
    await cluster.close();
  }
});

Deno.test("pilot refuses a nexus answering more than a route's limit", async () => {
  const cluster = await Cluster.create({ keepers: 1, threshold: 1 });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const fake = await FakeServer.start(cluster.svidDir("nexus"), port, "huge");
  try {
    // The first connection declares 4 GiB, the second streams without a
    // length: both end at the limit of secret get (64 MiB).
    for (const kind of ["declared", "streamed"]) {
      const res = await cluster.pilot(
        "superuser",
        ["secret", "get", "apps/db"],
        { env: { SPIKE_NEXUS_API_URL: `https://127.0.0.1:${port}` } },
      );
      assert.equal(res.code, 1, `${kind}: ${res.stderr}`);
      assert.match(
        res.stderr,
        /^SPIKE Nexus at https:\/\/127\.0\.0\.1:\d+ answered more than 67108864 bytes; the answer was refused\n$/,
        kind,
      );
    }
  } finally {
    await fake.close();
    await cluster.close();
  }
});
