// Copyright 2026 the SPIKE for Deno authors. MIT license.
// spike pilot audit verify on the audit files of a real nexus: the chain
// holds across a logrotate-style rotation (SIGHUP), a compressed rotated
// file and a restart; a copy with a line edited, removed, reordered, or
// with lines cut off the end, is refused naming the first break, the last
// one found through the anchor nexus keeps.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";

const SECRETS = "/v1/store/secrets";

async function gzip(from: string, to: string): Promise<void> {
  const input = await Deno.open(from, { read: true });
  const output = await Deno.open(to, { write: true, create: true });
  await input.readable.pipeThrough(new CompressionStream("gzip")).pipeTo(
    output.writable,
  );
  await Deno.remove(from);
}

async function traffic(cluster: Cluster, n: number, tag: string) {
  for (let i = 0; i < n; i++) {
    const path = `apps/${tag}/${i}`;
    const put = await cluster.call("superuser", SECRETS, {
      path,
      values: { k: `${tag}-value-${i}` },
    });
    assert.equal(put.status, 200);
    await cluster.call("superuser", `${SECRETS}?action=get`, { path });
  }
}

/** Waits until nexus anchored every line written before the call. */
async function anchored(cluster: Cluster): Promise<number> {
  const first = await cluster.call("superuser", "/v1/operator/audit-anchor");
  const target = (first.body?.head as { seq: number }).seq;
  const deadline = Date.now() + 20_000;
  for (;;) {
    await new Promise((r) => setTimeout(r, 150));
    const res = await cluster.call("superuser", "/v1/operator/audit-anchor");
    const anchor = res.body?.anchor as { seq: number } | null;
    if (anchor && anchor.seq >= target) return anchor.seq;
    if (Date.now() > deadline) throw new Error("Nothing anchored");
  }
}

Deno.test({
  name:
    "audit verify finds the chain whole across rotation and restart, and names every kind of tampering",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cluster = await Cluster.create({
      logLevel: "WARN",
      nexusEnv: { SPIKE_NEXUS_CHECKPOINT_DELAY: "100ms" },
    });
    const auditDir = `${cluster.dir}/audit`;
    await Deno.mkdir(auditDir);
    const live = `${auditDir}/audit.log`;
    cluster.options.nexusEnv.SPIKE_NEXUS_AUDIT_LOG = live;
    try {
      await cluster.start();
      await cluster.waitUnlocked();
      await traffic(cluster, 3, "a");
      // logrotate: move the file, compress it, tell nexus.
      await Deno.rename(live, `${live}.1`);
      cluster.nexus!.signal("SIGHUP");
      const deadline = Date.now() + 10_000;
      while (true) {
        try {
          await Deno.stat(live);
          break;
        } catch {
          if (Date.now() > deadline) throw new Error("Audit log not reopened");
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      await traffic(cluster, 2, "b");
      await gzip(`${live}.1`, `${live}.1.gz`);
      // A restart goes on from the live file's last line.
      await cluster.stopNexus("SIGTERM");
      await cluster.startNexus();
      await cluster.waitUnlocked();
      await traffic(cluster, 2, "c");
      const last = await anchored(cluster);

      const files = [live, `${live}.1.gz`];
      const ok = await cluster.pilot("superuser", [
        "audit",
        "verify",
        ...files,
      ]);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /The chain is whole/);
      const checked =
        /The last line nexus anchored \(seq (\d+)\) is there and matches/
          .exec(ok.stdout);
      assert.ok(checked && Number(checked[1]) >= last, ok.stdout);
      assert.match(ok.stdout, /seq 1 \(line 1 of .*audit\.log\.1\.gz\)/);
      assert.doesNotMatch(ok.stdout + ok.stderr, /value/);
      const json = await cluster.pilot("superuser", [
        "audit",
        "verify",
        "-f",
        "json",
        ...files,
      ]);
      assert.equal(json.code, 0, json.stderr);
      const report = JSON.parse(json.stdout);
      assert.equal(report.first.seq, 1);
      assert.ok(report.last.seq >= last);
      assert.equal(report.anchorChecked, true);

      // Only the superuser asks nexus; --offline asks nobody.
      const denied = await cluster.pilot("restore", ["audit", "verify", live]);
      assert.equal(denied.code, 4, denied.stderr);
      const offline = await cluster.pilot("restore", [
        "audit",
        "verify",
        "--offline",
        ...files,
      ]);
      assert.equal(offline.code, 0, offline.stderr);
      assert.match(offline.stdout, /The end was not checked/);

      // Tampered copies of the live file, one edit each.
      const lines = (await Deno.readTextFile(live)).split("\n").slice(0, -1);
      assert.ok(lines.length >= 8, `${lines.length} lines`);
      const tampered = `${cluster.dir}/tampered.log`;
      const verifyWith = async (edited: string[]) => {
        await Deno.writeTextFile(
          tampered,
          edited.map((l) => `${l}\n`).join(""),
        );
        return await cluster.pilot("superuser", [
          "audit",
          "verify",
          `${live}.1.gz`,
          tampered,
        ]);
      };
      const cases: [string, string[], RegExp][] = [
        [
          "edited",
          lines.map((l, i) =>
            i === 3 ? l.replace('"outcome":"success"', '"outcome":"denied"') : l
          ),
          /line 4 of .*tampered\.log \(seq \d+\) was altered: line 5 of .*tampered\.log holds another hash of it/,
        ],
        [
          "removed",
          lines.filter((_, i) => i !== 2),
          /1 line \(seq \d+\) is missing between line 2 of .*tampered\.log and line 3 of .*tampered\.log: removed/,
        ],
        [
          "reordered",
          [lines[0]!, lines[2]!, lines[1]!, ...lines.slice(3)],
          /line 3 of .*tampered\.log \(seq \d+\) belongs before line 2 of .*tampered\.log .*: lines were reordered/,
        ],
        [
          "truncated",
          lines.slice(0, -3),
          /The files end at seq \d+, but nexus anchored seq \d+: \d+ lines are missing at the end/,
        ],
      ];
      for (const [what, edited, message] of cases) {
        const res = await verifyWith(edited);
        assert.equal(res.code, 1, `${what}: ${res.stdout}`);
        assert.match(res.stdout, message, what);
        assert.match(res.stderr, /The audit files are not whole/, what);
      }
      // Without the rotated file the chain has no beginning to check: the
      // live file alone starts at its own first line and still ends whole.
      const alone = await cluster.pilot("superuser", ["audit", "verify", live]);
      assert.equal(alone.code, 0, alone.stdout);
    } finally {
      await cluster.close();
    }
  },
});
