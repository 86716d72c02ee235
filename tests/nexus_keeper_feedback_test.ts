// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Nexus tells, at the default log level, why it is locked and when pushes
 * to keepers fail and recover; a keeper that comes back gets its shard
 * within seconds, not one update interval (1 h here) later; a restore
 * pushes before it answers and pilot names the keepers still missing; and
 * `spike pilot operator push` pushes now.
 */
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import { fails, ok } from "./pilot_e2e_support.ts";

async function keeperHolds(cluster: Cluster, i: number): Promise<boolean> {
  const res = await cluster.request(
    "nexus",
    `${cluster.keeperUrl(i)}/v1/store/shard`,
    {},
    "keeper",
  );
  return res.status === 200;
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

/** The log lines of the running nexus that hold `text`, parsed. */
async function nexusLines(
  cluster: Cluster,
  text: string,
): Promise<Record<string, unknown>[]> {
  const log = await Deno.readTextFile(cluster.nexus!.logFile);
  return log.split("\n").filter((l) => l.includes(text)).map((l) =>
    JSON.parse(l)
  );
}

Deno.test("a locked nexus says at warn why: how many shards and what each keeper answered", async () => {
  const cluster = await Cluster.create({ logLevel: "WARN" });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    await cluster.stopNexus();
    for (const i of [1, 2, 3]) await cluster.stopKeeper(i);
    await cluster.startNexus();
    await waitFor(
      "the locked warning",
      async () => (await nexusLines(cluster, "Nexus is locked")).length > 0,
    );
    const [line] = await nexusLines(cluster, "Nexus is locked");
    assert.equal(line!.level, "WARN");
    assert.equal(line!.verified, "0 of 2 needed");
    for (const i of [1, 2, 3]) {
      assert.match(
        String(line!.waitingFor),
        new RegExp(
          `keeper ${i} \\(${
            cluster.keeperUrl(i).replaceAll(".", "\\.")
          }\\): \\S`,
        ),
      );
    }
    assert.match(String(line!.waitingFor), /ECONNREFUSED|refused/i);
    // Quick retries with the same reasons do not repeat the warning.
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await nexusLines(cluster, "Nexus is locked")).length, 1);
  } finally {
    await cluster.close();
  }
});

Deno.test("push failures and recoveries are logged at warn, and a returning keeper gets its shard at once", async () => {
  const cluster = await Cluster.create({
    logLevel: "WARN",
    keeperUpdateInterval: "1h",
  });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    assert.equal(
      ok(await cluster.pilot("superuser", ["operator", "push"]), "push"),
      "Shards pushed: 3 of 3 keepers hold their shard\n",
    );
    await cluster.stopKeeper(3);
    // The operator asks for a push: nexus finds keeper 3 gone.
    fails(
      await cluster.pilot("superuser", ["operator", "push"]),
      1,
      new RegExp(
        `^Only 2 of 3 keepers took their shard: keeper 3 \\(${
          cluster.keeperUrl(3).replaceAll(".", "\\.")
        }\\): `,
      ),
    );
    const [failed] = await nexusLines(cluster, "Shard push failed");
    assert.equal(failed!.level, "WARN");
    assert.equal(failed!.holding, "2 of 3");
    assert.match(String(failed!.failed), /^keeper 3 \(/);
    // Keeper 3 restarts empty; nexus retries it within seconds.
    await cluster.startKeeper(3);
    await waitFor("keeper 3 to hold its shard", () => keeperHolds(cluster, 3));
    await waitFor(
      "the recovery warning",
      async () =>
        (await nexusLines(cluster, "Keepers hold their shard again")).length >
          0,
    );
    const [back] = await nexusLines(cluster, "Keepers hold their shard again");
    assert.equal(back!.level, "WARN");
    assert.match(String(back!.keepers), /^3 \(/);
    // One warning per change, not one per retry.
    assert.equal((await nexusLines(cluster, "Shard push failed")).length, 1);
    // A keeper that restarts between two pushes goes unnoticed until a
    // probe: pilot status finds it empty and nexus gives it its shard.
    await cluster.stopKeeper(2);
    await cluster.startKeeper(2);
    assert.ok(!(await keeperHolds(cluster, 2)));
    const status = JSON.parse(
      ok(await cluster.pilot("superuser", ["status", "-f", "json"]), "status"),
    );
    assert.equal(status.keepers[1].holdsShard, true);
    assert.ok(await keeperHolds(cluster, 2));
    // Only the superuser may push.
    fails(
      await cluster.pilot("restore", ["operator", "push"]),
      4,
      /needs a SPIFFE ID of .*role\/superuser/,
    );
    assert.equal(
      (await cluster.call("restore", "/v1/operator/push")).status,
      401,
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("a restore pushes before answering and pilot names the keepers still missing", async () => {
  const cluster = await Cluster.create({
    logLevel: "WARN",
    keeperUpdateInterval: "1h",
  });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    ok(await cluster.pilot("recover", ["operator", "recover"]), "recover");
    await cluster.stopNexus();
    for (const i of [1, 2, 3]) await cluster.stopKeeper(i);
    // Total loss; keeper 3 stays down.
    for (const i of [1, 2]) await cluster.startKeeper(i);
    await cluster.startNexus();
    const restore = (i: number) =>
      cluster.pilot("restore", [
        "operator",
        "restore",
        `${cluster.dir}/recover/spike.recovery.${i}.txt`,
      ]);
    ok(await restore(1), "restore 1");
    const last = await restore(2);
    assert.equal(last.code, 0, last.stderr);
    assert.match(last.stdout, /^SPIKE is now restored and ready to use\./);
    assert.match(
      last.stderr,
      /^Warning: only 2 of 3 keepers took their shard \(keeper 3 \(https:\/\/127\.0\.0\.1:\d+\): [^)]+\); nexus retries them within seconds/,
    );
    // Keepers 1 and 2 got theirs before the answer.
    assert.ok(await keeperHolds(cluster, 1));
    assert.ok(await keeperHolds(cluster, 2));
    await cluster.startKeeper(3);
    await waitFor("keeper 3 to hold its shard", () => keeperHolds(cluster, 3));
  } finally {
    await cluster.close();
  }
});
