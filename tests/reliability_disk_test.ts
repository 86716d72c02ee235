// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Storage faults under a real nexus process: the disk fills up (a tiny
// tmpfs where mounts are permitted, a file size limit everywhere) and the
// data directory turns read-only. Writes must fail with a clear 5xx
// `store_write_failed`, reads must go on, nexus must keep running, and
// after the fault every acknowledged write is intact in an uncorrupted store.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Cluster, SpikeProcess, waitForPort } from "../scripts/cluster.ts";
import { permissionFlags } from "../scripts/permission_flags.ts";
import {
  canMountTmpfs,
  mustRun,
  Prng,
  runCommand,
  sized,
  SpikeClient,
  testSeed,
} from "./reliability_support.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const MOUNTS_PERMITTED = await canMountTmpfs();

/** The variables a child needs from ours to reuse the module cache. */
function passthroughEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (
    const name of [
      "PATH",
      "HOME",
      "DENO_DIR",
      "XDG_CACHE_HOME",
      "DENO_CERT",
      "DENO_TLS_CA_STORE",
      "SSL_CERT_FILE",
    ]
  ) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * Starts the cluster's nexus under a file size limit (KiB), as on a full
 * disk: SIGXFSZ is ignored, so a write past the limit fails with EFBIG.
 */
async function startLimitedNexus(
  cluster: Cluster,
  limitKib: number,
): Promise<SpikeProcess> {
  const env = cluster.nexusEnv();
  const logFile = `${cluster.dir}/logs/nexus-limited.log`;
  const log = await Deno.open(logFile, { write: true, create: true });
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `trap '' XFSZ; ulimit -f ${limitKib}; exec "$@"`,
      "bash",
      Deno.execPath(),
      "run",
      ...permissionFlags("nexus", env),
      MAIN,
      "nexus",
    ],
    env: { ...passthroughEnv(), ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  child.stderr.pipeTo(log.writable).catch(() => {});
  const proc = new SpikeProcess(child, logFile);
  cluster.nexus = proc;
  await waitForPort(cluster.nexusPort, 20_000, () => proc.running);
  return proc;
}

/** Writes secrets of `size` bytes until one fails; returns what was acked. */
async function fillUntilFailure(
  client: SpikeClient,
  prefix: string,
  size: number,
  limit: number,
): Promise<
  { acked: Map<string, string>; failure: { status: number; err: unknown } }
> {
  const acked = new Map<string, string>();
  for (let i = 0; i < limit; i++) {
    const path = `${prefix}/${i}`;
    const value = `${i}:`.padEnd(size, String.fromCharCode(97 + i % 26));
    const res = await client.post("/v1/store/secrets", {
      path,
      values: { v: value },
    });
    if (res.status !== 200) {
      return { acked, failure: { status: res.status, err: res.json?.err } };
    }
    acked.set(path, value);
  }
  throw new Error(`${limit} writes of ${size} bytes all fit`);
}

async function expectAllRead(
  client: SpikeClient,
  acked: Map<string, string>,
): Promise<void> {
  for (const [path, value] of acked) {
    const res = await client.post("/v1/store/secrets?action=get", { path });
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    assert.equal((res.json?.data as { v: string }).v, value, path);
  }
}

function integrityCheck(dataDir: string): string {
  const db = new DatabaseSync(`${dataDir}/spike.db`, { readOnly: true });
  try {
    const row = db.prepare("PRAGMA integrity_check").get() as {
      integrity_check: string;
    };
    return row.integrity_check;
  } finally {
    db.close();
  }
}

/**
 * Runs the fault story: fill until writes fail, check the failure is a
 * clean 507 and reads go on, then restart without the fault and check
 * everything acknowledged is there and writes work again.
 */
async function faultStory(
  cluster: Cluster,
  startFaulty: () => Promise<void>,
  clearFault: () => Promise<void>,
  writes: number,
): Promise<number> {
  const prng = new Prng(testSeed("disk fault"));
  let client: SpikeClient | undefined;
  try {
    await startFaulty();
    await cluster.waitUnlocked();
    const faulty = await SpikeClient.open(
      cluster.svidDir("superuser"),
      cluster.nexusUrl,
    );
    client = faulty;
    const { acked, failure } = await fillUntilFailure(
      faulty,
      "disk/fill",
      64 * 1024,
      writes,
    );
    assert.equal(failure.status, 507);
    assert.equal(failure.err, "store_write_failed");
    // More writes and policy writes fail the same way; nexus keeps serving.
    for (let i = 0; i < 3; i++) {
      const res = await faulty.post("/v1/store/secrets", {
        path: `disk/more/${i}`,
        values: { v: "x".repeat(prng.int(64, 128) * 1024) },
      });
      assert.ok(
        res.status === 507 || res.status === 200,
        `write under a full disk: ${res.status}`,
      );
      if (res.status === 507) assert.equal(res.json?.err, "store_write_failed");
    }
    await expectAllRead(faulty, acked);
    const listed = await faulty.post("/v1/store/secrets?action=list");
    assert.equal(listed.status, 200);
    assert.ok(cluster.nexus?.running, "nexus must survive a full disk");

    await faulty.close();
    client = undefined;
    await cluster.stopNexus("SIGKILL");
    await clearFault();
    assert.equal(integrityCheck(cluster.dataDir), "ok");
    await cluster.startNexus();
    await cluster.waitUnlocked();
    const healed = await SpikeClient.open(
      cluster.svidDir("superuser"),
      cluster.nexusUrl,
    );
    client = healed;
    await expectAllRead(healed, acked);
    const after = await healed.post("/v1/store/secrets", {
      path: "disk/after",
      values: { v: "fits now" },
    });
    assert.equal(after.status, 200);
    return acked.size;
  } finally {
    await client?.close();
  }
}

Deno.test("a file size limit (disk full) fails writes with 507 store_write_failed while reads go on", async () => {
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  try {
    for (let i = 1; i <= 3; i++) await cluster.startKeeper(i);
    const acked = await faultStory(
      cluster,
      async () => {
        await startLimitedNexus(cluster, 1024);
      },
      async () => {},
      sized(200, 400),
    );
    console.log(`file size limit: ${acked} writes acknowledged before it`);
  } finally {
    await cluster.close();
  }
});

Deno.test({
  name:
    "a full tmpfs data directory fails writes with 507 store_write_failed while reads go on",
  ignore: !MOUNTS_PERMITTED,
  async fn() {
    const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
    await Deno.mkdir(cluster.dataDir, { mode: 0o700 });
    await mustRun("mount", [
      "-t",
      "tmpfs",
      "-o",
      "size=2m,mode=0700",
      "tmpfs",
      cluster.dataDir,
    ]);
    try {
      const acked = await faultStory(
        cluster,
        () => cluster.start(),
        async () => {
          await mustRun("mount", ["-o", "remount,size=16m", cluster.dataDir]);
        },
        sized(200, 400),
      );
      console.log(`full tmpfs: ${acked} writes acknowledged before ENOSPC`);
    } finally {
      await cluster.stopNexus();
      await runCommand("umount", [cluster.dataDir]);
      await cluster.close();
    }
  },
});

if (!MOUNTS_PERMITTED) {
  console.log("Skipping the tmpfs tests: this machine does not permit mounts");
}

// A crash leaves the WAL files behind; a clean shutdown leaves none, and
// SQLite cannot make them on a read-only volume.
for (
  const [stop, how] of [
    ["SIGKILL", "a crash"],
    ["SIGTERM", "a clean shutdown"],
  ] as const
) {
  Deno.test({
    name:
      `a data directory read-only after ${how} serves reads and fails writes with 507 store_write_failed`,
    ignore: !MOUNTS_PERMITTED,
    async fn() {
      const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
      let mounted = false;
      let client: SpikeClient | undefined;
      try {
        await cluster.start();
        await cluster.waitUnlocked();
        const before = await SpikeClient.open(
          cluster.svidDir("superuser"),
          cluster.nexusUrl,
        );
        client = before;
        const acked = new Map<string, string>();
        for (let i = 0; i < 20; i++) {
          const value = `kept-${i}`;
          const res = await before.post("/v1/store/secrets", {
            path: `ro/${i}`,
            values: { v: value },
          });
          assert.equal(res.status, 200);
          acked.set(`ro/${i}`, value);
        }
        await before.close();
        client = undefined;
        // Nexus stops, then the volume comes back read-only (as after errors).
        await cluster.stopNexus(stop);
        await mustRun("mount", ["--bind", cluster.dataDir, cluster.dataDir]);
        mounted = true;
        await mustRun("mount", ["-o", "remount,bind,ro", cluster.dataDir]);
        await cluster.startNexus();
        await cluster.waitUnlocked();
        const ro = await SpikeClient.open(
          cluster.svidDir("superuser"),
          cluster.nexusUrl,
        );
        client = ro;
        await expectAllRead(ro, acked);
        for (
          const [route, body] of [
            ["/v1/store/secrets", { path: "ro/new", values: { v: "x" } }],
            ["/v1/store/secrets?action=delete", {
              path: "ro/1",
              versions: [1],
            }],
            ["/v1/acl/policy", {
              name: "ro-policy",
              spiffeidPattern: "^spiffe://spike\\.ist/workload/ro$",
              pathPattern: "^ro/.*$",
              permissions: ["read"],
            }],
          ] as const
        ) {
          const res = await ro.post(route, body);
          assert.equal(res.status, 507, `${route}: ${res.status}`);
          assert.equal(res.json?.err, "store_write_failed");
        }
        await expectAllRead(ro, acked);
        assert.ok(cluster.nexus?.running);
        await ro.close();
        client = undefined;

        await cluster.stopNexus("SIGKILL");
        await mustRun("umount", [cluster.dataDir]);
        mounted = false;
        assert.equal(integrityCheck(cluster.dataDir), "ok");
        await cluster.startNexus();
        await cluster.waitUnlocked();
        const rw = await SpikeClient.open(
          cluster.svidDir("superuser"),
          cluster.nexusUrl,
        );
        client = rw;
        await expectAllRead(rw, acked);
        const write = await rw.post("/v1/store/secrets", {
          path: "ro/new",
          values: { v: "writable again" },
        });
        assert.equal(write.status, 200);
      } finally {
        await client?.close();
        await cluster.stopNexus();
        if (mounted) await runCommand("umount", [cluster.dataDir]);
        await cluster.close();
      }
    },
  });
}
