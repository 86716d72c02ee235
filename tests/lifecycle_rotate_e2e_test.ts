// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Data-key rotation with real processes: an operator's rotate under
// concurrent writers loses no write and leaves every older value readable
// while new records name the new term (read from spike.db itself); a term
// that reaches its encryption budget gives way, with counts that survive
// kill -9; a background re-encryption reports progress, survives a restart
// and drops the older keys.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Cluster } from "../scripts/cluster.ts";
import { SpikeClient, waitFor } from "./reliability_support.ts";

const SECRETS = "/v1/store/secrets";

/** The data-key term of each stored record, read from spike.db. */
function recordTerms(cluster: Cluster): {
  heads: Map<string, number>;
  all: Map<number, number>;
} {
  const db = new DatabaseSync(`${cluster.dataDir}/spike.db`, {
    readOnly: true,
  });
  try {
    const term = (b: Uint8Array) =>
      new DataView(b.buffer, b.byteOffset).getUint32(1);
    const heads = new Map<string, number>();
    const all = new Map<number, number>();
    const count = (t: number) => all.set(t, (all.get(t) ?? 0) + 1);
    for (const r of db.prepare("SELECT path, head FROM secrets").all()) {
      const t = term(r.head as Uint8Array);
      heads.set(r.path as string, t);
      count(t);
    }
    for (const r of db.prepare("SELECT record FROM secret_versions").all()) {
      count(term(r.record as Uint8Array));
    }
    for (const r of db.prepare("SELECT record FROM policies").all()) {
      count(term(r.record as Uint8Array));
    }
    return { heads, all };
  } finally {
    db.close();
  }
}

async function status(cluster: Cluster) {
  const body = (await cluster.call("superuser", "/v1/operator/status", {}))
    .body!;
  return body as Record<string, unknown> & {
    dataKeys: {
      activeTerm: number;
      terms: { term: number; encryptions: number | null }[];
      maxEncryptions: number;
      reencrypt: { done: number; total: number; below: number } | null;
    };
  };
}

async function get(cluster: Cluster, path: string, version?: number) {
  const res = await cluster.call("superuser", `${SECRETS}?action=get`, {
    path,
    ...(version === undefined ? {} : { version }),
  });
  assert.equal(res.status, 200, `${path}@${version}`);
  return res.body!.data as Record<string, string>;
}

Deno.test({
  name:
    "rotate under concurrent writes: no write lost, every older value readable, new records sealed with the new term",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await Cluster.create({
      nexusEnv: { SPIKE_NEXUS_MAX_SECRET_VERSIONS: "1000" },
    });
    try {
      await cluster.start();
      await cluster.waitUnlocked();
      for (let i = 0; i < 40; i++) {
        for (const v of ["1", "2"]) {
          await cluster.call("superuser", SECRETS, {
            path: `old/${i}`,
            values: { v, i: String(i) },
          });
        }
      }
      const acked = [0, 0, 0, 0];
      let stop = false;
      const writers = acked.map(async (_, w) => {
        const client = await SpikeClient.open(
          cluster.svidDir("superuser"),
          cluster.nexusUrl,
          { role: "nexus", timeoutMs: 10_000 },
        );
        try {
          while (!stop) {
            const res = await client.post(SECRETS, {
              path: `live/${w}`,
              values: { n: String(acked[w]! + 1) },
              cas: acked[w],
            });
            assert.equal(res.status, 200, JSON.stringify(res.json));
            acked[w]!++;
          }
        } finally {
          await client.close();
        }
      });
      for (const expected of [2, 3]) {
        await waitFor("writes", () => acked.every((n) => n >= expected * 10));
        const rotated = await cluster.pilot("superuser", [
          "operator",
          "rotate",
        ]);
        assert.equal(rotated.code, 0, rotated.stderr);
        assert.match(
          rotated.stdout,
          new RegExp(
            `sealed with term ${expected} \\(term ${expected - 1} before\\)`,
          ),
        );
      }
      const atRotation = [...acked];
      await waitFor(
        "writes after the rotations",
        () => acked.every((n, w) => n >= atRotation[w]! + 5),
      );
      stop = true;
      await Promise.all(writers);
      for (let w = 0; w < acked.length; w++) {
        for (let v = 1; v <= acked[w]!; v++) {
          assert.deepEqual(await get(cluster, `live/${w}`, v), {
            n: String(v),
          });
        }
      }
      for (let i = 0; i < 40; i++) {
        assert.deepEqual(await get(cluster, `old/${i}`, 1), {
          v: "1",
          i: String(i),
        });
        assert.deepEqual(await get(cluster, `old/${i}`), {
          v: "2",
          i: String(i),
        });
      }
      const { heads, all } = recordTerms(cluster);
      for (let w = 0; w < acked.length; w++) {
        assert.equal(heads.get(`live/${w}`), 3);
      }
      for (let i = 0; i < 40; i++) assert.equal(heads.get(`old/${i}`), 1);
      assert.deepEqual([...all.keys()].sort(), [1, 2, 3]);
      const s = await status(cluster);
      assert.equal(s.dataKeys.activeTerm, 3);
      assert.deepEqual(s.dataKeys.terms.map((t) => t.term), [1, 2, 3]);
      const human = await cluster.pilot("superuser", ["status"]);
      assert.match(
        human.stdout,
        /Data key: term 3 since .*; older terms kept: 1, 2/,
      );
    } finally {
      await cluster.close();
    }
  },
});

Deno.test({
  name:
    "a term that reaches SPIKE_NEXUS_KEY_MAX_ENCRYPTIONS gives way to a new one, and after kill -9 counting resumes past every encryption made",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await Cluster.create({
      nexusEnv: {
        SPIKE_NEXUS_KEY_MAX_ENCRYPTIONS: "160",
        SPIKE_NEXUS_MAX_SECRET_VERSIONS: "1000",
      },
    });
    try {
      await cluster.start();
      await cluster.waitUnlocked();
      let n = 0;
      const put = async () => {
        n++;
        const res = await cluster.call("superuser", SECRETS, {
          path: `p/${n % 9}`,
          values: { n: String(n) },
        });
        assert.equal(res.status, 200);
      };
      for (let i = 0; i < 100; i++) await put();
      const before = await status(cluster);
      assert.ok(before.dataKeys.activeTerm >= 2, "rotated by count");
      const active = before.dataKeys.terms.find((t) =>
        t.term === before.dataKeys.activeTerm
      )!;
      await cluster.stopNexus("SIGKILL");
      await cluster.startNexus();
      await cluster.waitUnlocked();
      const after = await status(cluster);
      const resumed = after.dataKeys.terms.find((t) => t.term === active.term)!;
      assert.ok(
        resumed.encryptions! >= active.encryptions!,
        `resumed at ${resumed.encryptions}, had made ${active.encryptions}`,
      );
      for (let i = 0; i < 100; i++) await put();
      const end = await status(cluster);
      assert.ok(end.dataKeys.activeTerm > before.dataKeys.activeTerm);
      for (const t of end.dataKeys.terms) {
        assert.ok(
          t.encryptions! <= 160,
          `term ${t.term}: ${t.encryptions} encryptions`,
        );
      }
      // Every record is readable whatever term sealed it.
      for (let v = 1; v <= n; v++) {
        const data = await get(cluster, `p/${v % 9}`, Math.ceil(v / 9));
        assert.ok(data.n);
      }
    } finally {
      await cluster.close();
    }
  },
});

Deno.test({
  name:
    "re-encryption runs in the background with its progress in status, goes on after a restart, and drops the older keys",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await Cluster.create({
      nexusEnv: { SPIKE_NEXUS_REENCRYPT_RATE: "100" },
    });
    try {
      await cluster.start();
      await cluster.waitUnlocked();
      for (let i = 0; i < 400; i++) {
        await cluster.call("superuser", SECRETS, {
          path: `r/${String(i).padStart(3, "0")}`,
          values: { i: String(i) },
        });
      }
      const started = await cluster.pilot("superuser", [
        "operator",
        "rotate",
        "--reencrypt",
      ]);
      assert.equal(started.code, 0, started.stderr);
      assert.match(
        started.stdout,
        /Re-encrypting records of terms below 2 .* of 400 paths/,
      );
      await waitFor(
        "some progress",
        async () => ((await status(cluster)).dataKeys.reencrypt?.done ?? 0) > 0,
      );
      const human = await cluster.pilot("superuser", ["status"]);
      assert.match(
        human.stdout,
        /Re-encrypting: terms below 2, \d+ of 400 paths \(\d+ %\)/,
      );
      await cluster.stopNexus("SIGKILL");
      const midway = recordTerms(cluster).all;
      assert.ok((midway.get(1) ?? 0) > 0 && (midway.get(2) ?? 0) > 0);
      await cluster.startNexus();
      await cluster.waitUnlocked();
      await waitFor("the pass to end", async () => {
        const s = await status(cluster);
        return s.dataKeys.reencrypt === null &&
          s.dataKeys.terms.length === 1;
      }, 30_000);
      assert.deepEqual([...recordTerms(cluster).all.keys()], [2]);
      for (const i of [0, 199, 399]) {
        assert.deepEqual(
          await get(cluster, `r/${String(i).padStart(3, "0")}`),
          {
            i: String(i),
          },
        );
      }
    } finally {
      await cluster.close();
    }
  },
});
