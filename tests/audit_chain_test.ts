// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The audit chain on real files: every line carries its number and the
// hash of the line before; the chain goes on across a restart (also after
// a line cut by a crash) and a rotation; and the verifier names the first
// line edited, removed, reordered, inserted or cut, and lines cut off the
// end before the anchor.
import assert from "node:assert/strict";
import { type AuditHead, lineHash } from "../lib/audit/chain.ts";
import {
  type AuditSource,
  splitLines,
  verifyChain,
} from "../lib/audit/verify.ts";
import { createLogger } from "../lib/log.ts";
import { AuditLog, type AuditRecord } from "../modes/nexus/audit.ts";

function record(i: number): AuditRecord {
  return {
    trail: `t${i}`,
    caller: "spiffe://spike.ist/x",
    route: "/v1/store/secrets",
    action: "get",
    resource: `p/${i}`,
    outcome: "success",
    status: 200,
    err: null,
    durationMs: 1,
  };
}

const encoder = new TextEncoder();

function sourceOf(name: string, text: string): AuditSource {
  return {
    name,
    lines: splitLines(ReadableStream.from([encoder.encode(text)])),
  };
}

async function writeLines(file: string, from: number, to: number) {
  const log = await AuditLog.open(file);
  for (let i = from; i <= to; i++) log.write(record(i));
  // Lines go out once per turn of the event loop, or at close.
  log.close();
  return log.head;
}

function lines(text: string): string[] {
  return text.split("\n").slice(0, -1);
}

const join = (ls: string[]) => ls.map((l) => `${l}\n`).join("");

Deno.test("every audit line carries its number and the hash of the line before", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/audit.log`;
    const head = await writeLines(file, 1, 3);
    const written = lines(await Deno.readTextFile(file));
    assert.equal(written.length, 3);
    const parsed = written.map((l) => JSON.parse(l));
    assert.deepEqual(Object.keys(parsed[0]), ["time", "audit", "seq", "prev"]);
    assert.deepEqual(parsed.map((p) => p.seq), [1, 2, 3]);
    assert.equal(parsed[0].prev, "0".repeat(64));
    assert.equal(parsed[1].prev, lineHash(written[0]!).toHex());
    assert.equal(parsed[2].prev, lineHash(written[1]!).toHex());
    assert.equal(head?.seq, 3);
    assert.equal(head?.hash.toHex(), lineHash(written[2]!).toHex());
    assert.deepEqual(parsed[2].audit, record(3));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the chain goes on after a restart, a line cut by a crash, and a rotation", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/audit.log`;
    await writeLines(file, 1, 2);
    await writeLines(file, 3, 4);
    // Killed in the middle of a line.
    await Deno.writeTextFile(file, '{"time":"2026-', { append: true });
    await writeLines(file, 5, 5);
    const text = await Deno.readTextFile(file);
    const report = await verifyChain([sourceOf("audit.log", text)]);
    assert.match(
      report.problem ?? "",
      /line 5 of audit\.log is not an audit chain line/,
    );
    assert.equal(report.last?.seq, 4);
    // The crash line aside, the numbers and links go on.
    const kept = lines(text).filter((l) => l !== '{"time":"2026-');
    assert.equal(
      (await verifyChain([sourceOf("a", join(kept))])).problem,
      undefined,
    );

    // Rotation: the file moves away, nexus reopens a new one at the path.
    const log = await AuditLog.open(file);
    log.write(record(6));
    await Deno.rename(file, `${file}.1`);
    await log.reopen(createLogger("test"));
    log.write(record(7));
    log.close();
    const rotated = await Deno.readTextFile(`${file}.1`);
    const live = await Deno.readTextFile(file);
    const first = JSON.parse(lines(live)[0]!);
    assert.equal(first.audit.action, "audit-reopen");
    assert.equal(first.seq, 7);
    const both = await verifyChain([
      sourceOf(
        "audit.log.1",
        join(lines(rotated).filter((l) => l !== '{"time":"2026-')),
      ),
      sourceOf("audit.log", live),
    ]);
    assert.equal(both.problem, undefined);
    assert.equal(both.lines, 8);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a restart with an emptied file goes on from the anchored head", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/audit.log`;
    const head = (await writeLines(file, 1, 3))!;
    const old = await Deno.readTextFile(file);
    await Deno.writeTextFile(file, "");
    const log = await AuditLog.open(file, head);
    log.write(record(4));
    log.close();
    const report = await verifyChain([
      sourceOf("old", old),
      sourceOf("new", await Deno.readTextFile(file)),
    ]);
    assert.equal(report.problem, undefined);
    assert.equal(report.last?.seq, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the verifier names the first line edited, removed, reordered, inserted or cut", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/audit.log`;
    await writeLines(file, 1, 6);
    const good = lines(await Deno.readTextFile(file));
    const check = async (ls: string[], anchor?: AuditHead) =>
      await verifyChain([sourceOf("audit.log", join(ls))], anchor);
    assert.equal((await check(good)).problem, undefined);

    const edited = [...good];
    edited[2] = edited[2]!.replace('"status":200', '"status":201');
    assert.match(
      (await check(edited)).problem!,
      /^line 3 of audit\.log \(seq 3\) was altered: line 4 of audit\.log holds another hash of it$/,
    );
    const removed = good.filter((_, i) => i !== 3);
    assert.match(
      (await check(removed)).problem!,
      /^1 line \(seq 4\) is missing between line 3 of audit\.log and line 4 of audit\.log: removed$/,
    );
    const twoRemoved = good.filter((_, i) => i !== 1 && i !== 2);
    assert.match(
      (await check(twoRemoved)).problem!,
      /2 lines \(seq 2 to 3\) are missing/,
    );
    const reordered = [good[0]!, good[2]!, good[1]!, ...good.slice(3)];
    assert.match(
      (await check(reordered)).problem!,
      /^line 3 of audit\.log \(seq 2\) belongs before line 2 of audit\.log \(seq 3\): lines were reordered$/,
    );
    const swappedAtEnd = [...good.slice(0, 4), good[5]!, good[4]!];
    assert.match(
      (await check(swappedAtEnd)).problem!,
      /line 6 of audit\.log \(seq 5\) belongs before line 5/,
    );
    const inserted = [
      ...good.slice(0, 2),
      '{"audit":"forged"}',
      ...good.slice(2),
    ];
    assert.match(
      (await check(inserted)).problem!,
      /^line 3 of audit\.log is not an audit chain line: it was edited or inserted$/,
    );
    const duplicated = [...good.slice(0, 3), good[2]!, ...good.slice(3)];
    assert.match(
      (await check(duplicated)).problem!,
      /line 4 of audit\.log \(seq 3\) comes after seq 3/,
    );
    const cut = join(good).slice(0, -20);
    const cutReport = await verifyChain([sourceOf("audit.log", cut)]);
    assert.match(cutReport.problem!, /line 6 of audit\.log is cut short/);

    // Lines cut off the end: only the anchor tells.
    const anchor = { seq: 6, hash: lineHash(good[5]!) };
    const truncated = await check(good.slice(0, 4), anchor);
    assert.equal(truncated.problem, undefined);
    assert.match(
      truncated.end!,
      /^The files end at seq 4, but nexus anchored seq 6: 2 lines are missing at the end/,
    );
    const whole = await check(good, anchor);
    assert.equal(whole.end, undefined);
    assert.equal(whole.anchorChecked, true);
    // The anchored line replaced by another line with its number.
    const other = (await writeLines(`${dir}/other.log`, 1, 6))!;
    const forked = await check(good, other);
    assert.match(
      forked.problem!,
      /line 6 of audit\.log \(seq 6\) is not the line nexus anchored/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lines written before the chain began are counted, not refused", async () => {
  const legacy = '{"time":"t","audit":{"trail":"x"}}\n'.repeat(3);
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/audit.log`;
    await Deno.writeTextFile(file, legacy);
    await writeLines(file, 1, 2);
    const report = await verifyChain([
      sourceOf("audit.log", await Deno.readTextFile(file)),
    ]);
    assert.equal(report.problem, undefined);
    assert.equal(report.unchained, 3);
    assert.equal(report.lines, 2);
    assert.equal(report.first?.seq, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
