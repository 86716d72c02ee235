// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Break-the-glass recovery through real `spike pilot` processes: recover to
 * files, drill, lose nexus and every keeper, restore from a threshold of
 * files, and what restore refuses (another installation's shard, a
 * duplicate, an unlocked nexus). A second installation supplies the foreign
 * shard and shows partial shards expiring after SPIKE_NEXUS_RESTORE_TIMEOUT.
 */
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import { fails, ok } from "./pilot_e2e_support.ts";

interface Status {
  state: string;
  restore: { collected: number; remaining: number | null };
  keepers: { index: number; holdsShard: boolean | null }[];
}

async function status(cluster: Cluster): Promise<Status> {
  const res = await cluster.pilot("restore", ["status", "-f", "json"]);
  return JSON.parse(ok(res, "status"));
}

/** Polls pilot's status until `done` holds; fails after 20 s. */
async function waitForStatus(
  cluster: Cluster,
  done: (s: Status) => boolean,
  what: string,
): Promise<Status> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const s = await status(cluster);
    if (done(s)) return s;
    if (Date.now() > deadline) {
      throw new Error(`Gave up waiting for ${what}: ${JSON.stringify(s)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function recoveryFile(cluster: Cluster, index: number): string {
  return `${cluster.dir}/recover/spike.recovery.${index}.txt`;
}

/** Kills nexus and every keeper, then starts empty keepers and nexus. */
async function loseEverything(cluster: Cluster): Promise<void> {
  await cluster.stopNexus("SIGKILL");
  for (let i = 1; i <= cluster.options.keepers; i++) {
    await cluster.stopKeeper(i, "SIGKILL");
  }
  await cluster.start();
}

Deno.test("recovery drill: recover, lose everything, restore from t files", async (t) => {
  const [main, other] = await Promise.all([
    Cluster.create({ logLevel: "WARN" }),
    Cluster.create({
      logLevel: "WARN",
      nexusEnv: { SPIKE_NEXUS_RESTORE_TIMEOUT: "1s" },
    }),
  ]);
  try {
    await Promise.all([main.start(), other.start()]);
    await Promise.all([main.waitUnlocked(), other.waitUnlocked()]);

    await t.step("recover writes one private file per shard", async () => {
      ok(
        await main.pilot("superuser", ["secret", "put", "apps/db", "pw=one"]),
        "put",
      );
      ok(
        await main.pilot("superuser", ["secret", "put", "apps/db", "pw=two"]),
        "put",
      );
      ok(
        await main.pilot("superuser", ["secret", "put", "apps/web", "k=v"]),
        "put",
      );
      // A stale file from an older export is replaced.
      await Deno.mkdir(`${main.dir}/recover`, { recursive: true, mode: 0o700 });
      await Deno.writeTextFile(recoveryFile(main, 9), "old\n");
      const out = ok(
        await main.pilot("recover", ["operator", "recover"]),
        "recover",
      );
      assert.match(out, /You encrypt these shards and keep them safe/);
      assert.match(out, new RegExp(`${main.dir}/recover`));
      const names = [];
      for await (const e of Deno.readDir(`${main.dir}/recover`)) {
        names.push(e.name);
      }
      assert.deepEqual(names.sort(), [
        "spike.recovery.1.txt",
        "spike.recovery.2.txt",
        "spike.recovery.3.txt",
      ]);
      assert.equal(
        (await Deno.stat(`${main.dir}/recover`)).mode! & 0o777,
        0o700,
      );
      for (const i of [1, 2, 3]) {
        const text = await Deno.readTextFile(recoveryFile(main, i));
        assert.match(text, new RegExp(`^spike:${i}:[0-9a-f]{64}\\n?$`));
        assert.equal(
          (await Deno.stat(recoveryFile(main, i))).mode! & 0o777,
          0o600,
        );
      }
      ok(await other.pilot("recover", ["operator", "recover"]), "recover");
    });

    await t.step(
      "drill on a healthy nexus says the files would restore",
      async () => {
        const files = [1, 2, 3].map((i) => recoveryFile(main, i));
        assert.match(
          ok(
            await main.pilot("restore", ["operator", "drill", ...files]),
            "drill",
          ),
          /would restore SPIKE Nexus \(3 valid, threshold 2\)/,
        );
        // Without arguments it checks the recovery folder.
        const report = JSON.parse(
          ok(
            await main.pilot("restore", ["operator", "drill", "-f", "json"]),
            "drill",
          ),
        );
        assert.equal(report.wouldRestore, true);
        assert.equal(report.files.length, 3);
        // Another installation's files would not restore this one.
        const foreign = [1, 2].map((i) => recoveryFile(other, i));
        const res = await main.pilot("restore", [
          "operator",
          "drill",
          ...foreign,
        ]);
        assert.equal(res.code, 1, res.stderr);
        assert.match(
          res.stdout,
          /NOT VALID .*not a shard of this installation/,
        );
        assert.match(res.stdout, /would NOT restore/);
      },
    );

    await t.step(
      "after losing nexus and every keeper, nexus stays locked",
      async () => {
        await loseEverything(main);
        const s = await status(main);
        assert.equal(s.state, "locked");
        assert.equal(s.restore.collected, 0);
        fails(
          await main.pilot("superuser", ["secret", "get", "apps/db"]),
          5,
          /locked/,
        );
      },
    );

    await t.step("drill with one file is not enough (exit 1)", async () => {
      const res = await main.pilot("restore", [
        "operator",
        "drill",
        recoveryFile(main, 2),
      ]);
      assert.equal(res.code, 1, res.stderr);
      assert.match(res.stdout, /OK .*\(shard 2\)/);
      assert.match(
        res.stdout,
        /would NOT restore SPIKE Nexus \(1 valid, threshold 2\)/,
      );
      assert.equal((await status(main)).restore.collected, 0);
    });

    await t.step(
      "a shard of another installation is refused and changes nothing",
      async () => {
        fails(
          await main.pilot("restore", ["operator", "restore"], {
            stdin: await Deno.readTextFile(recoveryFile(other, 1)),
          }),
          2,
          /rejected shard 1: it is not a shard of this installation's current root key: shard 1 does not match its commitment/,
        );
        fails(
          await main.pilot("restore", ["operator", "restore"], {
            stdin: "spike:1:not-hex\n",
          }),
          2,
          /^Invalid recovery shard/,
        );
        const s = await status(main);
        assert.equal(s.state, "locked");
        assert.equal(s.restore.collected, 0);
      },
    );

    await t.step("restore from t files, refusing a duplicate", async () => {
      const shard1 = await Deno.readTextFile(recoveryFile(main, 1));
      // A file argument, as drill takes.
      const first = ok(
        await main.pilot("restore", [
          "operator",
          "restore",
          recoveryFile(main, 1),
        ]),
        "restore 1",
      );
      assert.match(first, /Shards collected: 1\nShards remaining: 1\n/);
      fails(
        await main.pilot("restore", ["operator", "restore"], { stdin: shard1 }),
        7,
        /already holds shard 1 from this restore/,
      );
      assert.equal((await status(main)).restore.collected, 1);
      // Pasted wrapped over two lines and in uppercase: the same shard.
      const shard3 = await Deno.readTextFile(recoveryFile(main, 3));
      const [prefix, hex] = [shard3.slice(0, 8), shard3.slice(8).trim()];
      const last = ok(
        await main.pilot("restore", ["operator", "restore"], {
          stdin: `${prefix}${hex.slice(0, 30)}\n${
            hex.slice(30).toUpperCase()
          }\n`,
        }),
        "restore 3",
      );
      assert.match(last, /SPIKE is now restored and ready to use/);
      assert.match(last, /README\.md, .*"Recovery runbook"/);
    });

    await t.step(
      "the old secrets are readable and the keepers re-hydrated",
      async () => {
        assert.equal(
          ok(
            await main.pilot("superuser", ["secret", "get", "apps/db", "pw"]),
            "get",
          ),
          "two\n",
        );
        assert.equal(
          ok(
            await main.pilot("superuser", [
              "secret",
              "get",
              "apps/db",
              "pw",
              "-v",
              "1",
            ]),
            "get -v 1",
          ),
          "one\n",
        );
        assert.equal(
          ok(
            await main.pilot("superuser", ["secret", "get", "apps/web", "k"]),
            "get",
          ),
          "v\n",
        );
        const s = await waitForStatus(
          main,
          (s) => s.keepers.length === 3 && s.keepers.every((k) => k.holdsShard),
          "every keeper to hold its shard",
        );
        assert.equal(s.state, "unlocked");
        // The keepers really hold the shards: a crashed nexus heals from them.
        await main.stopNexus("SIGKILL");
        await main.startNexus();
        await main.waitUnlocked();
        assert.equal(
          ok(
            await main.pilot("superuser", ["secret", "get", "apps/db", "pw"]),
            "get",
          ),
          "two\n",
        );
      },
    );

    await t.step(
      "restore on an unlocked nexus is a conflict (exit 7)",
      async () => {
        fails(
          await main.pilot("restore", ["operator", "restore"], {
            stdin: await Deno.readTextFile(recoveryFile(main, 2)),
          }),
          7,
          /already unlocked/,
        );
      },
    );

    await t.step(
      "partial shards are forgotten after SPIKE_NEXUS_RESTORE_TIMEOUT",
      async () => {
        await loseEverything(other);
        const out = ok(
          await other.pilot("restore", ["operator", "restore"], {
            stdin: await Deno.readTextFile(recoveryFile(other, 2)),
          }),
          "restore",
        );
        assert.match(out, /Shards collected: 1/);
        const s = await waitForStatus(
          other,
          (s) => s.restore.collected === 0,
          "the partial shard to expire",
        );
        assert.equal(s.state, "locked");
        assert.equal(s.restore.remaining, 2);
      },
    );
  } finally {
    await Promise.all([main.close(), other.close()]);
  }
});
