// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Runs the benchmark's quick preset as `deno task bench --quick` does, so the
// benchmark cannot rot. Checks what it produces, never how fast it was.
import assert from "node:assert/strict";
import { taskArgs } from "./task_support.ts";

const ROOT = new URL("..", import.meta.url).pathname;

interface Results {
  info: { scale: string; command: string; cpus: number };
  rows: {
    id: string;
    rps?: number;
    ratio?: number;
    cpuUsPerRequest?: number;
    cpuRatio?: number;
    clientCpuUsPerRequest?: number;
    p50?: number;
    target?: { text: string; pass: boolean };
  }[];
  notes: string[];
}

Deno.test("bench --quick prints the table and writes results, document and chart", async () => {
  const out = await Deno.makeTempDir({ prefix: "spike-bench-test-" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: [...await taskArgs("bench"), "--quick", "--out", out],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, `bench failed:\n${stderr}\n${stdout}`);
    assert.match(stdout, /^\| Scenario \| Clients \| req\/s \| × baseline \|/m);
    assert.match(
      stdout,
      /\| CPU µs\/req \| CPU × baseline \| Client µs\/req \|/,
    );
    assert.match(
      stdout,
      /\| Secret read \(workload, policy-checked\) \| 16 \|/,
    );

    const results = JSON.parse(
      await Deno.readTextFile(`${out}/results.json`),
    ) as Results;
    assert.match(results.info.scale, /5,000 secrets × 3 versions/);
    const byId = new Map(results.rows.map((r) => [r.id, r]));
    for (
      const id of [
        "baseline-16",
        "read",
        "write",
        "sqlite-raw-commit",
        "sdk-read-client",
        "sdk-read",
        "mixed-16",
        "mixed-64",
        "write-64",
        "fresh-read",
        "cipher-json-64",
        "cipher-stream-65520",
        "pilot-floor",
        "pilot-get",
        "scale-restart",
        "scale-rss-rest",
        "scale-list",
        "scale-list-workload",
        "scale-list-all",
        "read-scale-c1",
        "scale-check",
        "rotate-scale",
        "rekey-scale",
        "backup-scale",
        "read-rotated",
        "write-rotated",
        "recovery",
      ]
    ) {
      assert.ok(byId.has(id), `row ${id} is missing`);
    }
    assert.ok(byId.get("sdk-read")!.rps! > 0, "the SDK served no read");
    assert.equal(byId.get("sdk-read")!.target?.text, "≥ 0.9× load client");
    for (
      const id of ["read", "write", "mixed-64", "write-64", "cipher-json-64"]
    ) {
      const row = byId.get(id)!;
      assert.ok(row.rps! > 0, `${id} served no request`);
      assert.ok(row.ratio! > 0, `${id} has no ratio to the baseline`);
      assert.ok(row.cpuUsPerRequest! > 0, `${id} has no server CPU`);
      assert.ok(row.cpuRatio! > 0, `${id} has no CPU ratio to the baseline`);
      assert.ok(row.clientCpuUsPerRequest! > 0, `${id} has no client CPU`);
    }
    assert.equal(byId.get("baseline-16")!.cpuRatio, 1);
    assert.ok(byId.get("baseline-16")!.clientCpuUsPerRequest! > 0);
    assert.ok(byId.get("pilot-floor")!.p50! > 0);
    assert.equal(byId.get("pilot-get")!.target?.text, "p50 ≤ floor + 15 ms");
    assert.equal(
      byId.get("cipher-json-65520")!.target?.text,
      "≥ 0.3× baseline",
    );
    assert.ok(byId.get("scale-restart")!.p50! > 0);
    for (const id of ["rotate-scale", "rekey-scale", "backup-scale"]) {
      assert.ok(byId.get(id)!.p50! > 0, `${id} took no time`);
    }
    assert.equal(
      byId.get("read-rotated")!.target?.text,
      "≥ 0.9× before the rotation (each over its baseline)",
    );
    for (const id of ["scale-list", "scale-list-workload"]) {
      assert.equal(byId.get(id)!.target?.text, "≤ 1000 µs server CPU");
    }
    assert.equal(
      byId.get("read")!.target?.text,
      "≥ 0.7× baseline, ≤ 2.0× its CPU",
    );
    assert.equal(
      byId.get("write")!.target?.text,
      "≥ 0.35× baseline, ≤ 3.5× its CPU",
    );

    const markdown = await Deno.readTextFile(`${out}/results.md`);
    assert.match(markdown, /^## Performance/);
    assert.match(
      markdown,
      /!\[Throughput next to the baseline\]\(chart\.svg\)/,
    );
    const svg = await Deno.readTextFile(`${out}/chart.svg`);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(svg, /Secret read \(workload, policy-checked\) \(16\)/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
