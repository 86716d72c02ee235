// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import {
  findRecoveryFiles,
  recoveryDir,
  writeRecoveryFiles,
} from "../modes/pilot/recovery_files.ts";
import {
  readRecoverAnswer,
  restoreRequestBody,
} from "../modes/pilot/operator.ts";
import { parseRecoveryText, type Shard } from "../lib/shard/mod.ts";
import { CliError } from "../modes/pilot/cli_error.ts";

function shard(index: number, fill: number): Shard {
  return { index, value: new Uint8Array(32).fill(fill) };
}

async function withTempDir(run: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "pilot_recovery_" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("recover writes one 0600 file per shard in a new 0700 folder", async () => {
  await withTempDir(async (tmp) => {
    const dir = `${tmp}/a/recover`;
    const written = await writeRecoveryFiles(dir, [
      shard(1, 0xab),
      shard(2, 0x01),
    ]);
    assert.deepEqual(written, [
      `${dir}/spike.recovery.1.txt`,
      `${dir}/spike.recovery.2.txt`,
    ]);
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    for (const path of written) {
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    }
    assert.equal(
      await Deno.readTextFile(written[0]!),
      `spike:1:${"ab".repeat(32)}`,
      "no trailing newline",
    );
    const back = parseRecoveryText(await Deno.readFile(written[1]!));
    assert.equal(back.index, 2);
    assert.deepEqual(back.value, new Uint8Array(32).fill(1));
  });
});

Deno.test("recover tightens an existing folder to 0700", async () => {
  await withTempDir(async (dir) => {
    await Deno.chmod(dir, 0o755);
    await writeRecoveryFiles(dir, [shard(1, 7)]);
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
  });
});

Deno.test("recover replaces older recovery files and leaves other files", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/spike.recovery.1.txt`, "old");
    await Deno.writeTextFile(`${dir}/spike.recovery.9.txt`, "old");
    await Deno.writeTextFile(`${dir}/spike.recovery.txt`, "old");
    await Deno.writeTextFile(`${dir}/notes.txt`, "keep");
    await writeRecoveryFiles(dir, [shard(1, 2), shard(2, 3)]);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), [
      "notes.txt",
      "spike.recovery.1.txt",
      "spike.recovery.2.txt",
    ]);
    assert.match(
      await Deno.readTextFile(`${dir}/spike.recovery.1.txt`),
      /^spike:1:0202/,
    );
  });
});

Deno.test("recover refuses a recovery path that is a file", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "x");
    await assert.rejects(
      () => writeRecoveryFiles(`${dir}/file`, [shard(1, 1)]),
      (e: unknown) =>
        e instanceof CliError && /is not a folder/.test(e.message),
    );
    await assert.rejects(
      () => writeRecoveryFiles(`${dir}/file/sub`, [shard(1, 1)]),
      (e: unknown) =>
        e instanceof CliError && /is not a folder/.test(e.message),
    );
  });
});

Deno.test("drill finds recovery files ordered by index", async () => {
  await withTempDir(async (dir) => {
    for (
      const name of [
        "spike.recovery.10.txt",
        "spike.recovery.2.txt",
        "spike.recovery.x.txt",
        "other",
      ]
    ) {
      await Deno.writeTextFile(`${dir}/${name}`, "");
    }
    assert.deepEqual(await findRecoveryFiles(dir), [
      `${dir}/spike.recovery.2.txt`,
      `${dir}/spike.recovery.10.txt`,
    ]);
    assert.deepEqual(await findRecoveryFiles(`${dir}/missing`), []);
  });
});

Deno.test("the recovery folder comes from SPIKE_PILOT_RECOVERY_DIR, else HOME", () => {
  const saved = {
    dir: Deno.env.get("SPIKE_PILOT_RECOVERY_DIR"),
    home: Deno.env.get("HOME"),
  };
  try {
    Deno.env.set("SPIKE_PILOT_RECOVERY_DIR", "/var/r");
    assert.equal(recoveryDir(), "/var/r");
    Deno.env.set("SPIKE_PILOT_RECOVERY_DIR", "rel");
    assert.equal(recoveryDir(), `${Deno.cwd()}/rel`);
    Deno.env.delete("SPIKE_PILOT_RECOVERY_DIR");
    Deno.env.set("HOME", "/home/op");
    assert.equal(recoveryDir(), "/home/op/.spike/recover");
  } finally {
    for (
      const [name, value] of [["SPIKE_PILOT_RECOVERY_DIR", saved.dir], [
        "HOME",
        saved.home,
      ]]
    ) {
      if (value === undefined) Deno.env.delete(name!);
      else Deno.env.set(name!, value);
    }
  }
});

Deno.test("a recover answer is read as bytes into shards and the body is zeroed", () => {
  const first = Array.from({ length: 32 }, (_, i) => i + 1);
  const second = Array.from({ length: 32 }, () => 200);
  const body = new TextEncoder().encode(
    JSON.stringify({ shards: { "2": second, "1": first } }),
  );
  const shards = readRecoverAnswer(body);
  assert.deepEqual(shards.map((s) => s.index), [1, 2]);
  assert.deepEqual([...shards[0]!.value], first);
  assert.ok(body.every((b) => b === 0), "answer body zeroed");
});

Deno.test("a recover answer with a bad or empty shard is refused", () => {
  const bad = (value: unknown) => () =>
    readRecoverAnswer(new TextEncoder().encode(JSON.stringify(value)));
  const ok = Array.from({ length: 32 }, () => 1);
  for (
    const value of [
      {},
      { shards: {} },
      { shards: [ok] },
      { shards: { "0": ok } },
      { shards: { "01": ok } },
      { shards: { "1": ok.slice(1) } },
      { shards: { "1": [...ok.slice(1), 256] } },
      { shards: { "1": ok, "2": new Array(32).fill(0) } },
    ]
  ) {
    assert.throws(bad(value), CliError, JSON.stringify(value).slice(0, 40));
  }
  assert.throws(
    () => readRecoverAnswer(new TextEncoder().encode("{nope")),
    /invalid JSON/,
  );
});

Deno.test("the restore request carries the id and 32 integers", () => {
  const value = Uint8Array.from({ length: 32 }, (_, i) => i * 8);
  const body = restoreRequestBody({ index: 3, value });
  assert.deepEqual(JSON.parse(new TextDecoder().decode(body)), {
    id: 3,
    shard: [...value],
  });
});
