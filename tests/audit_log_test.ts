// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The audit writer: group writes in order, settled only once written,
// failures reported to the writer's caller, rotation by reopen.
import assert from "node:assert/strict";
import {
  AuditLog,
  type AuditRecord,
  newTrailId,
} from "../modes/nexus/audit.ts";
import type { Logger } from "../lib/log.ts";

function record(n: number): AuditRecord {
  return {
    trail: newTrailId(),
    caller: "spiffe://spike.ist/workload/a",
    route: "/v1/store/secrets",
    action: "get",
    resource: `apps/${n}`,
    outcome: "success",
    status: 200,
    err: null,
    durationMs: 0.1,
  };
}

// The resources of the file's lines, in order; every line must be whole.
async function resources(path: string): Promise<string[]> {
  const text = await Deno.readTextFile(path);
  assert.ok(text === "" || text.endsWith("\n"), "a line is cut short");
  return text.split("\n").slice(0, -1).map((line) =>
    JSON.parse(line).audit.resource
  );
}

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

Deno.test("audit lines given together are written in order, each settled once in the file", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/audit.log`;
  const audit = await AuditLog.open(path);
  try {
    await Promise.all(
      Array.from({ length: 200 }, async (_, n) => {
        await audit.write(record(n));
        // Settled means written: the line is in the file already.
        assert.ok((await resources(path)).includes(`apps/${n}`));
      }),
    );
    assert.deepEqual(
      await resources(path),
      Array.from({ length: 200 }, (_, n) => `apps/${n}`),
    );
  } finally {
    audit.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an audit line that cannot be written rejects its write", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const audit = await AuditLog.open(`${dir}/audit.log`);
    await audit.write(record(1));
    audit.close();
    // The file is closed: the write fails, and says so to its caller.
    await assert.rejects(audit.write(record(2)));
    assert.deepEqual(await resources(`${dir}/audit.log`), ["apps/1"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reopen moves later lines to a new file at the path, none split or lost", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/audit.log`;
  const audit = await AuditLog.open(path);
  try {
    const before = Array.from({ length: 50 }, (_, n) => audit.write(record(n)));
    // logrotate: move the file away, then reopen while lines are in flight.
    await Deno.rename(path, `${path}.1`);
    const reopened = audit.reopen(quiet);
    const during = Array.from(
      { length: 50 },
      (_, n) => audit.write(record(50 + n)),
    );
    await Promise.all([...before, reopened, ...during]);
    await audit.write(record(100));
    const rotated = await resources(`${path}.1`);
    const fresh = await resources(path);
    assert.deepEqual(
      [...rotated, ...fresh],
      Array.from({ length: 101 }, (_, n) => `apps/${n}`),
    );
    assert.equal(fresh.at(-1), "apps/100", "the new file gets later lines");
  } finally {
    audit.close();
    await Deno.remove(dir, { recursive: true });
  }
});
