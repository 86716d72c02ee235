// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Backup and restore with real processes: a backup taken while writes go
// on holds one moment of the store and restores on a new host folder; a
// restore drill (back up, write more, lose everything, restore from the
// backup and the recovery files) finds exactly the backed-up state; a
// backup restored where only another key's shards are at hand is refused
// clearly; damaged or altered backups and non-empty folders are refused.
import assert from "node:assert/strict";
import {
  type BackupFrame,
  BackupReader,
  BackupWriter,
} from "../lib/backup/format.ts";
import { Cluster, type RunResult } from "../scripts/cluster.ts";
import { sleep, SpikeClient, waitFor } from "./reliability_support.ts";

const SECRETS = "/v1/store/secrets";
const POLICY = "/v1/acl/policy";

async function ok(
  cluster: Cluster,
  route: string,
  body: unknown,
): Promise<Record<string, unknown>> {
  const res = await cluster.call("superuser", route, body);
  assert.equal(res.status, 200, `${route} ${JSON.stringify(res.body)}`);
  return res.body ?? {};
}

async function pilot(
  cluster: Cluster,
  identity: string,
  args: string[],
): Promise<RunResult> {
  return await cluster.pilot(identity, args);
}

/** Everything the API shows: every path's metadata and live values, every policy. */
async function dump(cluster: Cluster): Promise<unknown> {
  const keys = (await ok(cluster, `${SECRETS}?action=list`, {}))
    .keys as string[];
  const secrets: Record<string, unknown> = {};
  for (const path of keys) {
    const meta = await cluster.call(
      "superuser",
      `${SECRETS}/metadata?action=get`,
      { path },
    );
    const versions: Record<string, unknown> = {};
    const listed = meta.body?.versions as Record<string, unknown> | undefined;
    for (const v of Object.keys(listed ?? {})) {
      const got = await cluster.call("superuser", `${SECRETS}?action=get`, {
        path,
        version: Number(v),
      });
      versions[v] = got.status === 200 ? got.body?.data : got.status;
    }
    secrets[path] = {
      meta: meta.status === 200 ? meta.body : meta.status,
      versions,
    };
  }
  const names = ((await ok(cluster, `${POLICY}?action=list`, {})).policies as {
    name: string;
  }[]).map((p) => p.name);
  const policies: Record<string, unknown> = {};
  for (const name of names) {
    policies[name] = await ok(cluster, `${POLICY}?action=get`, { name });
  }
  return { secrets, policies };
}

async function fill(cluster: Cluster, prefix: string, n: number) {
  for (let i = 0; i < n; i++) {
    await ok(cluster, SECRETS, {
      path: `${prefix}/${String(i).padStart(4, "0")}`,
      values: { v: `${prefix}-${i}` },
    });
  }
}

async function policy(cluster: Cluster, name: string) {
  await ok(cluster, POLICY, {
    name,
    spiffeidPattern: `spiffe://spike\\.ist/workload/${name}`,
    pathPattern: `${name}/.*`,
    permissions: ["read"],
  });
}

/** Moves nexus to a new, empty data folder (a new host). */
async function newHost(cluster: Cluster, name: string): Promise<void> {
  await Deno.mkdir(`${cluster.dir}/${name}`);
  cluster.dataDir = `${cluster.dir}/${name}/data`;
}

async function status(cluster: Cluster): Promise<Record<string, unknown>> {
  return (await cluster.call("superuser", "/v1/operator/status", {})).body!;
}

Deno.test({
  name:
    "a backup taken while writes go on holds one moment of the store, and restores on a new host folder",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await Cluster.create();
    try {
      await cluster.start();
      await cluster.waitUnlocked();
      // "a/" sorts first and "z/" last, hundreds of paths apart: pages of
      // the snapshot far apart.
      await fill(cluster, "m", 700);
      await policy(cluster, "app");
      await policy(cluster, "ops");
      const client = await SpikeClient.open(
        cluster.svidDir("superuser"),
        cluster.nexusUrl,
        { role: "nexus", timeoutMs: 10_000 },
      );
      let acked = 0;
      let stop = false;
      // One writer: a/first then z/last, version after version, so in any
      // moment of the store z/last is at a/first's version or one behind.
      const writes = (async () => {
        while (!stop) {
          for (const path of ["a/first", "z/last"]) {
            const res = await client.post(SECRETS, {
              path,
              values: { n: String(acked + 1) },
              cas: acked,
            });
            assert.equal(res.status, 200);
          }
          acked++;
        }
      })();
      await waitFor("writes before the backup", () => acked >= 20);
      const before = acked;
      const file = `${cluster.dir}/during.spkb`;
      const backup = await pilot(cluster, "superuser", [
        "operator",
        "backup",
        "-o",
        file,
      ]);
      const after = acked;
      await sleep(100);
      stop = true;
      await writes;
      await client.close();
      assert.equal(backup.code, 0, backup.stderr);
      assert.match(
        backup.stdout,
        /702 secrets .*2 policies, checksum verified/,
      );
      assert.match(backup.stdout, /opens only with root key [0-9a-f]{16}/);
      assert.equal(Deno.statSync(file).mode! & 0o777, 0o600);
      assert.ok(after > before, "writes went on during the backup");
      const keyId = (await status(cluster)).rootKey as { id: string };

      await cluster.stopNexus("SIGTERM");
      const old = cluster.dataDir;
      await newHost(cluster, "host2");
      const restored = await cluster.nexusCommand(["restore-backup", file]);
      assert.equal(restored.code, 0, restored.stderr);
      assert.match(restored.stdout, new RegExp(`root key ${keyId.id}`));
      assert.equal(
        Deno.statSync(`${cluster.dataDir}/spike.db`).mode! & 0o777,
        0o600,
      );
      // The keepers hold this key's shards: nexus unlocks on its own.
      await cluster.startNexus();
      await cluster.waitUnlocked();
      const version = async (path: string) =>
        Number(
          ((await ok(cluster, `${SECRETS}?action=get`, { path })).data as {
            n: string;
          }).n,
        );
      const a = await version("a/first");
      const z = await version("z/last");
      assert.ok(
        a >= before && a <= after + 1,
        `a/first ${a} in ${before}..${after}`,
      );
      assert.ok(
        z === a || z === a - 1,
        `a/first ${a}, z/last ${z}: not one moment`,
      );
      const keys = (await ok(cluster, `${SECRETS}?action=list`, {}))
        .keys as string[];
      assert.equal(keys.length, 702);
      assert.deepEqual(
        (await ok(cluster, `${SECRETS}?action=get`, { path: "m/0699" })).data,
        { v: "m-699" },
      );
      assert.equal(
        ((await ok(cluster, `${POLICY}?action=get`, { name: "ops" })) as {
          pathPattern: string;
        }).pathPattern,
        "ops/.*",
      );
      // The restored store seals new records with a new term.
      await ok(cluster, SECRETS, { path: "a/first", values: { n: "new" } });
      assert.equal(
        ((await status(cluster)).dataKeys as { activeTerm: number }).activeTerm,
        2,
      );
      // The first host's folder is as it was.
      assert.ok(Deno.statSync(`${old}/spike.db`).isFile);
    } finally {
      await cluster.close();
    }
  },
});

Deno.test({
  name:
    "restore drill: back up, write more, lose everything, restore from the backup and the recovery files, and find exactly the backed-up state",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await Cluster.create();
    try {
      await cluster.start();
      await cluster.waitUnlocked();
      await fill(cluster, "apps", 30);
      for (let v = 2; v <= 4; v++) {
        await ok(cluster, SECRETS, {
          path: "apps/0001",
          values: { v: `${v}` },
        });
      }
      await ok(cluster, `${SECRETS}?action=delete`, {
        path: "apps/0001",
        versions: [2],
      });
      await policy(cluster, "apps");
      await policy(cluster, "ci");
      await ok(cluster, "/v1/cipher/encrypt", {
        plaintext: btoa("cipher text"),
      });
      assert.equal(
        (await pilot(cluster, "recover", ["operator", "recover"])).code,
        0,
      );
      const backedUp = await dump(cluster);
      const file = `${cluster.dir}/drill.spkb`;
      assert.equal(
        (await pilot(cluster, "superuser", ["operator", "backup", "-o", file]))
          .code,
        0,
      );
      // Life goes on after the backup.
      await fill(cluster, "later", 5);
      await ok(cluster, SECRETS, { path: "apps/0002", values: { v: "new" } });
      await ok(cluster, `${POLICY}?action=delete`, { name: "ci" });
      assert.notDeepEqual(await dump(cluster), backedUp);

      // Everything is lost: nexus, its folder, every keeper.
      await cluster.stopNexus();
      for (let i = 1; i <= 3; i++) await cluster.stopKeeper(i);
      await Deno.remove(cluster.dataDir, { recursive: true });
      for (let i = 1; i <= 3; i++) await cluster.startKeeper(i);
      const restored = await cluster.nexusCommand(["restore-backup", file]);
      assert.equal(restored.code, 0, restored.stderr);
      await cluster.startNexus();
      assert.equal((await status(cluster)).state, "locked");
      const drill = await pilot(cluster, "restore", ["operator", "drill"]);
      assert.equal(drill.code, 0, drill.stdout + drill.stderr);
      const files = [...Deno.readDirSync(`${cluster.dir}/recover`)]
        .map((e) => `${cluster.dir}/recover/${e.name}`).sort();
      let last: RunResult | undefined;
      for (const f of files.slice(0, 2)) {
        last = await cluster.pilot("restore", ["operator", "restore"], {
          stdin: Deno.readTextFileSync(f),
        });
        assert.equal(last.code, 0, last.stderr);
      }
      assert.match(last!.stdout, /restored/);
      await cluster.waitUnlocked();
      assert.deepEqual(await dump(cluster), backedUp);
      // The keepers got their shards back, and the store takes writes.
      await waitFor(
        "keepers to hold their shards",
        async () =>
          ((await status(cluster)).keepers as { holdsShard: boolean }[])
            .every((k) => k.holdsShard),
      );
      await ok(cluster, SECRETS, { path: "apps/0003", values: { v: "after" } });
    } finally {
      await cluster.close();
    }
  },
});

Deno.test({
  name:
    "a backup made before a rekey is refused with the keepers' and the recovery files of the new key, and unlocks with its own key's recovery files",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await Cluster.create();
    try {
      await cluster.start();
      await cluster.waitUnlocked();
      await fill(cluster, "old", 10);
      assert.equal(
        (await pilot(cluster, "recover", ["operator", "recover"])).code,
        0,
      );
      await Deno.rename(`${cluster.dir}/recover`, `${cluster.dir}/recover-old`);
      const file = `${cluster.dir}/old.spkb`;
      assert.equal(
        (await pilot(cluster, "superuser", ["operator", "backup", "-o", file]))
          .code,
        0,
      );
      const oldId = ((await status(cluster)).rootKey as { id: string }).id;
      const rekey = await pilot(cluster, "superuser", ["operator", "rekey"]);
      assert.equal(rekey.code, 0, rekey.stderr);
      assert.equal(
        (await pilot(cluster, "recover", ["operator", "recover"])).code,
        0,
      );
      await fill(cluster, "new", 3);

      // The nexus host is lost; the keepers hold the new key's shards.
      await cluster.stopNexus();
      await newHost(cluster, "host2");
      const restored = await cluster.nexusCommand(["restore-backup", file]);
      assert.equal(restored.code, 0, restored.stderr);
      assert.match(restored.stdout, new RegExp(`needs root key ${oldId}`));
      await cluster.startNexus();
      await waitFor(
        "nexus to tell whose shards the keepers hold",
        async () =>
          /Keepers hold shards of another root key/.test(
            await Deno.readTextFile(cluster.nexus!.logFile),
          ),
      );
      const locked = await status(cluster);
      assert.equal(locked.state, "locked");
      assert.equal((locked.rootKey as { id: string }).id, oldId);
      // The new key's recovery files do not fit; the old key's do.
      const drillNew = await pilot(cluster, "restore", ["operator", "drill"]);
      assert.notEqual(drillNew.code, 0);
      assert.match(drillNew.stdout, /would NOT restore/);
      const newest = Deno.readTextFileSync(
        `${cluster.dir}/recover/spike.recovery.1.txt`,
      );
      const refused = await cluster.pilot("restore", ["operator", "restore"], {
        stdin: newest,
      });
      assert.equal(refused.code, 2);
      assert.match(
        refused.stderr,
        /rejected shard 1: it is not a shard of this installation's current root key/,
      );
      assert.match(refused.stderr, /spike pilot status/);
      for (const i of [1, 2]) {
        const res = await cluster.pilot("restore", ["operator", "restore"], {
          stdin: Deno.readTextFileSync(
            `${cluster.dir}/recover-old/spike.recovery.${i}.txt`,
          ),
        });
        assert.equal(res.code, 0, res.stderr);
      }
      await cluster.waitUnlocked();
      const keys = (await ok(cluster, `${SECRETS}?action=list`, {})).keys;
      assert.equal((keys as string[]).length, 10);
    } finally {
      await cluster.close();
    }
  },
});

/** Rewrites a backup file through `change` of its frames, checksum made anew. */
async function rewrite(
  file: string,
  out: string,
  change: (frames: BackupFrame[]) => BackupFrame[],
): Promise<void> {
  const reader = new BackupReader();
  const frames = reader.push(await Deno.readFile(file));
  reader.finish();
  const writer = new BackupWriter();
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let mac = "";
  for (const f of change(frames)) {
    if (f.type === "header") parts.push(writer.start(f.header));
    else if (f.type === "keyring") parts.push(writer.keyring(f.keyring));
    else if (f.type === "secret") parts.push(writer.secret(f.secret));
    else if (f.type === "policySet") {
      parts.push(writer.policySet(f.generation, f.record));
    } else if (f.type === "policy") parts.push(writer.policy(f.name, f.record));
    else mac = f.end.mac;
  }
  // The MAC needs the root key, which whoever edits the file does not have.
  parts.push(
    await writer.end(() => Promise.resolve(Uint8Array.fromBase64(mac))),
  );
  await Deno.writeFile(
    out,
    new Uint8Array(await new Blob(parts).arrayBuffer()),
  );
}

Deno.test({
  name:
    "restore-backup refuses a folder that is not empty and a damaged or cut file, writing nothing; a file altered by someone without the key restores but does not unlock",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await Cluster.create();
    try {
      await cluster.start();
      await cluster.waitUnlocked();
      await fill(cluster, "x", 20);
      const file = `${cluster.dir}/good.spkb`;
      assert.equal(
        (await pilot(cluster, "superuser", ["operator", "backup", "-o", file]))
          .code,
        0,
      );
      await cluster.stopNexus("SIGTERM");
      const bytes = await Deno.readFile(file);

      // The running store's folder is not empty.
      const busy = await cluster.nexusCommand(["restore-backup", file]);
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /is not empty \(it holds spike\.db\)/);

      await newHost(cluster, "host2");
      const refusals: [string, Uint8Array, RegExp][] = [
        ["cut.spkb", bytes.subarray(0, bytes.length - 40), /incomplete/],
        [
          "flipped.spkb",
          (() => {
            const b = bytes.slice();
            b[Math.floor(b.length / 2)]! ^= 1;
            return b;
          })(),
          /checksum|malformed|cut short/,
        ],
        ["text.spkb", new TextEncoder().encode("hello"), /not a SPIKE backup/],
      ];
      for (const [name, content, reason] of refusals) {
        await Deno.writeFile(`${cluster.dir}/${name}`, content);
        const res = await cluster.nexusCommand([
          "restore-backup",
          `${cluster.dir}/${name}`,
        ]);
        assert.equal(res.code, 1, name);
        assert.match(res.stderr, reason, name);
        assert.match(res.stderr, /nothing was written/, name);
        assert.throws(
          () => Deno.statSync(cluster.dataDir),
          Deno.errors.NotFound,
        );
      }
      const missing = await cluster.nexusCommand([
        "restore-backup",
        `${cluster.dir}/none.spkb`,
      ]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /no such file/);

      // One secret dropped, the checksum made anew: only the MAC can tell.
      const altered = `${cluster.dir}/altered.spkb`;
      await rewrite(
        file,
        altered,
        (frames) =>
          frames.filter((f) =>
            !(f.type === "secret" && f.secret.path === "x/0007")
          ),
      );
      const restored = await cluster.nexusCommand(["restore-backup", altered]);
      assert.equal(restored.code, 0, restored.stderr);
      const nexus = await cluster.startNexus({ mayExit: true });
      const exit = await nexus.status;
      assert.equal(exit.code, 1);
      const log = await Deno.readTextFile(nexus.logFile);
      assert.match(log, /backup file was altered after nexus wrote it/);
      assert.doesNotMatch(log, /x-7/);
    } finally {
      await cluster.close();
    }
  },
});
