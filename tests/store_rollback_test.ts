// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Whole-store rollback and tampering seen from outside, with real keepers,
// nexus and pilot processes: an older spike.db copied back, or a head put
// back while nexus was down, leaves nexus holding its store (503 on every
// data call, one log sentence, status "held") until an operator with the
// restore role accepts it; keepers keep the newest checkpoint meanwhile.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Cluster } from "../scripts/cluster.ts";

const SECRETS = "/v1/store/secrets";

interface KeeperCheckpoint {
  epoch: number;
  generation: number;
}

async function keeperCheckpoint(
  cluster: Cluster,
  i: number,
): Promise<KeeperCheckpoint | undefined> {
  const res = await cluster.request(
    "nexus",
    `${cluster.keeperUrl(i)}/v1/store/shard`,
    {},
    "keeper",
  );
  return res.body?.checkpoint as KeeperCheckpoint | undefined;
}

/** Waits until every keeper holds a checkpoint of at least `generation`. */
async function checkpointed(
  cluster: Cluster,
  generation: number,
  epoch = 0,
): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const held = await Promise.all(
      [1, 2, 3].map((i) => keeperCheckpoint(cluster, i)),
    );
    if (
      held.every((c) =>
        c !== undefined && (c.epoch > epoch ||
          (c.epoch === epoch && c.generation >= generation))
      )
    ) {
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(`Keepers did not reach generation ${generation}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function copyStore(from: string, to: string): void {
  // A clean copy: the nexus that wrote it stopped, so no WAL is pending.
  Deno.copyFileSync(from, to);
  for (const suffix of ["-wal", "-shm"]) {
    try {
      Deno.removeSync(`${to}${suffix}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
}

async function logLines(cluster: Cluster): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(cluster.nexus!.logFile);
  return text.split("\n").filter((l) => l.startsWith("{")).map((l) =>
    JSON.parse(l)
  );
}

async function put(cluster: Cluster, path: string, pass: string) {
  const res = await cluster.call("superuser", SECRETS, {
    path,
    values: { pass },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}

Deno.test({
  name:
    "an older spike.db copied back is held until an operator accepts the rollback, and the keepers keep the newest checkpoint meanwhile",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cluster = await Cluster.create({
      logLevel: "WARN",
      nexusEnv: { SPIKE_NEXUS_CHECKPOINT_DELAY: "100ms" },
    });
    try {
      await cluster.start();
      await cluster.waitUnlocked();
      await put(cluster, "apps/db", "old-password");
      await checkpointed(cluster, 1);
      await cluster.stopNexus("SIGTERM");
      const db = `${cluster.dataDir}/spike.db`;
      const saved = `${cluster.dir}/spike.db.saved`;
      copyStore(db, saved);

      // Later writes: the password rotated, a revoked one deleted.
      await cluster.startNexus();
      await cluster.waitUnlocked();
      await put(cluster, "apps/db", "new-password");
      await put(cluster, "apps/web", "web-password");
      const removed = await cluster.call(
        "superuser",
        `${SECRETS}?action=delete`,
        { path: "apps/db", versions: [1] },
      );
      assert.equal(removed.status, 200);
      await checkpointed(cluster, 4);
      await cluster.stopNexus("SIGTERM");

      // The older copy back in place.
      copyStore(saved, db);
      await cluster.startNexus();
      const deadline = Date.now() + 20_000;
      let status: Record<string, unknown> | undefined;
      while (Date.now() < deadline) {
        status = (await cluster.call("superuser", "/v1/operator/status"))
          .body;
        if (status?.state !== "locked") break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status?.state, "held");
      const integrity = status?.integrity as Record<string, unknown>;
      assert.equal(integrity.state, "rolled-back");
      assert.deepEqual(integrity.store, { epoch: 0, generation: 1 });
      assert.deepEqual(integrity.checkpoint, { epoch: 0, generation: 4 });

      // Every data call: 503 with the reason, nothing served.
      for (
        const [route, body] of [
          [`${SECRETS}?action=get`, { path: "apps/db", version: 1 }],
          [SECRETS, { path: "apps/x", values: { k: "v" } }],
          ["/v1/acl/policy?action=list", {}],
        ] as const
      ) {
        const res = await cluster.call("superuser", route, body);
        assert.equal(res.status, 503, route);
        assert.equal(res.body?.err, "state_not_ready");
        assert.match(
          String(res.body?.reason),
          /older than the keepers' checkpoint/,
        );
      }
      const pilotGet = await cluster.pilot("superuser", [
        "secret",
        "get",
        "apps/db",
      ]);
      assert.equal(pilotGet.code, 5);
      assert.match(pilotGet.stderr, /serves no data: the store is older/);
      assert.doesNotMatch(pilotGet.stdout + pilotGet.stderr, /password/);
      const said = (await logLines(cluster)).filter((l) =>
        l.level === "ERROR" &&
        /older than the keepers' checkpoint/.test(String(l.msg))
      );
      assert.equal(said.length, 1, "one sentence in the log");
      assert.match(
        String(said[0]!.msg),
        /holds 1 writes \(epoch 0\) where the keepers saw 4 \(epoch 0\).*spike pilot operator accept-rollback/,
      );

      // Keepers keep the newer checkpoint: a restart of nexus on the same
      // old copy is held again.
      await cluster.call("superuser", "/v1/operator/push");
      for (const i of [1, 2, 3]) {
        assert.equal((await keeperCheckpoint(cluster, i))?.generation, 4);
      }

      // Only the restore role may accept, and pilot asks first.
      const asSuperuser = await cluster.pilot("superuser", [
        "operator",
        "accept-rollback",
        "--yes",
      ]);
      assert.equal(asSuperuser.code, 4, asSuperuser.stderr);
      const unconfirmed = await cluster.pilot("restore", [
        "operator",
        "accept-rollback",
      ]);
      assert.equal(unconfirmed.code, 2, unconfirmed.stderr);
      assert.match(unconfirmed.stderr, /pass --yes/);
      const accepted = await cluster.pilot("restore", [
        "operator",
        "accept-rollback",
        "--yes",
      ]);
      assert.equal(accepted.code, 0, accepted.stderr);
      assert.match(accepted.stdout, /holds its store: The store is older/);
      assert.match(
        accepted.stdout,
        /Accepted: SPIKE Nexus serves the store at 1 writes \(epoch 1\)\. The writes after this copy \(3 at least\) are gone/,
      );

      // Served again, as the copy was: the rotation is gone.
      const got = await cluster.call("superuser", `${SECRETS}?action=get`, {
        path: "apps/db",
      });
      assert.equal(got.status, 200);
      assert.deepEqual(got.body?.data, { pass: "old-password" });
      const again = await cluster.call(
        "restore",
        "/v1/operator/accept-rollback",
        {
          generation: 1,
        },
      );
      assert.equal(again.status, 409);
      const audit = (await logLines(cluster)).find((l) =>
        (l.audit as Record<string, unknown> | undefined)?.route ===
          "/v1/operator/accept-rollback" &&
        (l.audit as Record<string, unknown>).status === 200
      );
      assert.ok(audit, "the accepted rollback is audited");
      assert.match(
        String((audit.audit as Record<string, unknown>).caller),
        /pilot\/role\/restore$/,
      );
      await checkpointed(cluster, 1, 1);

      // The next restart serves: the keepers hold the accepted epoch.
      await cluster.stopNexus("SIGTERM");
      await cluster.startNexus();
      await cluster.waitUnlocked();
      const status2 = await cluster.call("superuser", "/v1/operator/status");
      assert.deepEqual(
        (status2.body?.integrity as Record<string, unknown>).store,
        { epoch: 1, generation: 1 },
      );
    } finally {
      await cluster.close();
    }
  },
});

Deno.test({
  name:
    "a head put back older while nexus was down holds the store; check names what fails, and accepting serves it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cluster = await Cluster.create({
      logLevel: "WARN",
      nexusEnv: { SPIKE_NEXUS_CHECKPOINT_DELAY: "100ms" },
    });
    try {
      await cluster.start();
      await cluster.waitUnlocked();
      await put(cluster, "apps/db", "first-value");
      await put(cluster, "apps/db", "revoked-value");
      const file = `${cluster.dataDir}/spike.db`;
      const read = (sql: string) => {
        const db = new DatabaseSync(file);
        try {
          return db.prepare(sql).get() as Record<string, unknown>;
        } finally {
          db.close();
        }
      };
      const before = read(
        "SELECT revision, head FROM secrets WHERE path = 'apps/db'",
      );
      // The revoked value deleted; the keepers see it.
      assert.equal(
        (await cluster.call("superuser", `${SECRETS}?action=delete`, {
          path: "apps/db",
          versions: [2],
        })).status,
        200,
      );
      await checkpointed(cluster, 3);
      await cluster.stopNexus("SIGTERM");
      // The head from before the delete, put back with its revision.
      const db = new DatabaseSync(file);
      try {
        db.prepare("UPDATE secrets SET revision = ?, head = ? WHERE path = ?")
          .run(
            before.revision as number,
            before.head as Uint8Array,
            "apps/db",
          );
      } finally {
        db.close();
      }
      await cluster.startNexus();
      let status: Record<string, unknown> | undefined;
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        status = (await cluster.call("superuser", "/v1/operator/status"))
          .body;
        if (status?.state !== "locked") break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status?.state, "held");
      assert.equal(
        (status?.integrity as Record<string, unknown>).state,
        "tampered",
      );
      const get = await cluster.call("superuser", `${SECRETS}?action=get`, {
        path: "apps/db",
      });
      assert.equal(get.status, 503);
      const check = await cluster.pilot("superuser", ["operator", "check"]);
      assert.equal(check.code, 1, check.stderr);
      assert.match(check.stdout, /Checked 1 secrets \(1 older versions\)/);
      assert.match(
        check.stdout,
        /add up to 2 writes, but its integrity row was sealed at 3/,
      );
      assert.doesNotMatch(check.stdout, /value/);
      const json = await cluster.pilot("superuser", [
        "operator",
        "check",
        "-f",
        "json",
      ]);
      assert.equal(JSON.parse(json.stdout).problemCount, 1);
      const accepted = await cluster.pilot("restore", [
        "operator",
        "accept-rollback",
        "--yes",
      ]);
      assert.equal(accepted.code, 0, accepted.stderr);
      const clean = await cluster.pilot("superuser", ["operator", "check"]);
      assert.equal(clean.code, 0, clean.stdout);
      assert.match(clean.stdout, /No problem found/);
    } finally {
      await cluster.close();
    }
  },
});

Deno.test({
  name:
    "sealed bytes flipped on disk are refused on read of that path only; a revision column edited holds the store",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cluster = await Cluster.create({
      logLevel: "WARN",
      nexusEnv: { SPIKE_NEXUS_CHECKPOINT_DELAY: "100ms" },
    });
    try {
      await cluster.start();
      await cluster.waitUnlocked();
      await put(cluster, "apps/db", "db-value");
      await put(cluster, "apps/web", "web-value");
      await checkpointed(cluster, 2);
      await cluster.stopNexus("SIGTERM");
      const file = `${cluster.dataDir}/spike.db`;
      const edit = (sql: string, ...params: (string | Uint8Array)[]) => {
        const db = new DatabaseSync(file);
        try {
          return db.prepare(sql).all(...params);
        } finally {
          db.close();
        }
      };
      const [row] = edit("SELECT head FROM secrets WHERE path = 'apps/db'");
      const head = (row as { head: Uint8Array }).head;
      const flipped = head.slice();
      flipped[40]! ^= 0x01;
      edit("UPDATE secrets SET head = ? WHERE path = 'apps/db'", flipped);
      await cluster.startNexus();
      await cluster.waitUnlocked();
      const get = (path: string) =>
        cluster.call("superuser", `${SECRETS}?action=get`, { path });
      const refused = await get("apps/db");
      assert.equal(refused.status, 500);
      assert.deepEqual(refused.body, { err: "state_integrity_check" });
      assert.deepEqual((await get("apps/web")).body?.data, {
        pass: "web-value",
      });
      const check = await cluster.pilot("superuser", ["operator", "check"]);
      assert.equal(check.code, 1);
      assert.match(
        check.stdout,
        /Stored secret "apps\/db" head \(revision 1\) does not open/,
      );
      assert.doesNotMatch(check.stdout, /value/);

      // The bytes back, then the revision column edited instead.
      await cluster.stopNexus("SIGTERM");
      edit("UPDATE secrets SET head = ? WHERE path = 'apps/db'", head);
      edit("UPDATE secrets SET revision = 5 WHERE path = 'apps/web'");
      await cluster.startNexus();
      let status: Record<string, unknown> | undefined;
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        status = (await cluster.call("superuser", "/v1/operator/status"))
          .body;
        if (status?.state !== "locked") break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status?.state, "held");
      assert.match(
        String((status?.integrity as Record<string, unknown>).reason),
        /add up to 6 writes, but its integrity row was sealed at 2/,
      );
      const held = await get("apps/db");
      assert.equal(held.status, 503);
      assert.doesNotMatch(JSON.stringify(held.body), /value/);
    } finally {
      await cluster.close();
    }
  },
});
