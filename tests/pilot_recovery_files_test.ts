// Copyright 2026 the SPIKE for Deno authors. MIT license.
import { resolveRecoveryDir } from "../lib/config/recovery_dir.ts";
import assert from "node:assert/strict";
import {
  findRecoveryFiles,
  writeRecoveryFiles,
} from "../modes/pilot/recovery_files.ts";
import {
  readRecoverAnswer,
  restoreRequestBody,
} from "../modes/pilot/operator.ts";
import { parseRecoveryText, type Shard } from "../lib/shard/mod.ts";
import { CliError } from "../modes/pilot/cli_error.ts";
import { ExitCode } from "../modes/pilot/exit_codes.ts";

function shard(index: number, fill: number): Shard {
  return { index, value: new Uint8Array(32).fill(fill) };
}

async function names(dir: string): Promise<string[]> {
  const found = [];
  for await (const entry of Deno.readDir(dir)) found.push(entry.name);
  return found.sort();
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

Deno.test("recover uses an existing private folder without changing its mode", async () => {
  await withTempDir(async (dir) => {
    // The sticky bit keeps the folder private, and a chmod to 0700 would
    // clear it.
    await Deno.chmod(dir, 0o1700);
    await writeRecoveryFiles(dir, [shard(1, 7)]);
    assert.equal((await Deno.stat(dir)).mode! & 0o7777, 0o1700);
    await Deno.mkdir(`${dir}/real`, { mode: 0o700 });
    await Deno.symlink(`${dir}/real`, `${dir}/link`);
    await writeRecoveryFiles(`${dir}/link`, [shard(1, 7)]);
    assert.equal(
      await Deno.readTextFile(`${dir}/real/spike.recovery.1.txt`),
      `spike:1:${"07".repeat(32)}`,
    );
  });
});

Deno.test("recover refuses an existing folder open to group or others and leaves its mode", async () => {
  await withTempDir(async (tmp) => {
    await Deno.mkdir(`${tmp}/shared`);
    await Deno.mkdir(`${tmp}/group`);
    await Deno.chmod(`${tmp}/shared`, 0o1777);
    await Deno.chmod(`${tmp}/group`, 0o750);
    await Deno.symlink(`${tmp}/shared`, `${tmp}/link`);
    for (
      const [dir, mode] of [
        [`${tmp}/shared`, "1777"],
        [`${tmp}/group`, "0750"],
        [`${tmp}/link`, "1777"],
      ] as const
    ) {
      await assert.rejects(
        () => writeRecoveryFiles(dir, [shard(1, 1)]),
        (e: unknown) =>
          e instanceof CliError && e.exitCode === ExitCode.Usage &&
          e.message.includes(`"${dir}" has mode ${mode}`) &&
          /open to group or others: use a private folder \(chmod 700 /.test(
            e.message,
          ),
      );
    }
    assert.equal((await Deno.stat(`${tmp}/shared`)).mode! & 0o7777, 0o1777);
    assert.equal((await Deno.stat(`${tmp}/group`)).mode! & 0o7777, 0o750);
    assert.deepEqual(await findRecoveryFiles(`${tmp}/shared`), []);
    assert.deepEqual(await findRecoveryFiles(`${tmp}/group`), []);
  });
});

Deno.test("recover replaces older recovery files and leaves other files", async () => {
  await withTempDir(async (dir) => {
    const others = [
      "notes.txt",
      "spike.recovery-notes.txt",
      "spike.recovery.txt",
      "spike.recovery.1.txt.bak",
      "spike.recovery.x.txt",
    ];
    for (const name of others) {
      await Deno.writeTextFile(`${dir}/${name}`, "keep");
    }
    await Deno.writeTextFile(`${dir}/spike.recovery.1.txt`, "old");
    await Deno.writeTextFile(`${dir}/spike.recovery.9.txt`, "old");
    await Deno.writeTextFile(`${dir}/spike.recovery.01.txt`, "old");
    // What a recover killed half-way leaves behind.
    for (const suffix of ["tmp", "old"]) {
      await Deno.writeTextFile(
        `${dir}/.spike.recovery.3.txt.0123456789abcdef.${suffix}`,
        "spike:3:…",
      );
    }
    await Deno.mkdir(`${dir}/spike.recovery.8.txt`);
    await writeRecoveryFiles(dir, [shard(1, 2), shard(2, 3)]);
    assert.deepEqual(
      await names(dir),
      [
        ...others,
        "spike.recovery.1.txt",
        "spike.recovery.2.txt",
        "spike.recovery.8.txt",
      ].sort(),
    );
    for (const name of others) {
      assert.equal(await Deno.readTextFile(`${dir}/${name}`), "keep", name);
    }
    assert.match(
      await Deno.readTextFile(`${dir}/spike.recovery.1.txt`),
      /^spike:1:0202/,
    );
    assert.equal(
      (await Deno.stat(`${dir}/spike.recovery.1.txt`)).mode! & 0o777,
      0o600,
    );
  });
});

Deno.test("a failed recover leaves the previous files byte for byte and no temporaries", async () => {
  await withTempDir(async (dir) => {
    const before = new Map([
      ["spike.recovery.1.txt", `spike:1:${"11".repeat(32)}`],
      ["spike.recovery.3.txt", `spike:3:${"33".repeat(32)}`],
      ["spike.recovery.4.txt", `spike:4:${"44".repeat(32)}`],
    ]);
    for (const [name, text] of before) {
      await Deno.writeTextFile(`${dir}/${name}`, text, { mode: 0o600 });
    }
    await Deno.mkdir(`${dir}/spike.recovery.2.txt`);
    await assert.rejects(
      () =>
        writeRecoveryFiles(dir, [
          shard(1, 0xaa),
          shard(2, 0xbb),
          shard(3, 0xcc),
        ]),
      (e: unknown) =>
        e instanceof CliError &&
        e.message.includes(`Cannot save the recovery files in "${dir}"`) &&
        e.message.includes(`"${dir}/spike.recovery.2.txt" is a folder`) &&
        e.message.endsWith("the previous recovery files are unchanged") &&
        !/aaaa|bbbb|cccc/.test(e.message),
    );
    assert.deepEqual(
      await names(dir),
      [...before.keys(), "spike.recovery.2.txt"].sort(),
    );
    for (const [name, text] of before) {
      assert.equal(await Deno.readTextFile(`${dir}/${name}`), text, name);
    }
    assert.ok((await Deno.stat(`${dir}/spike.recovery.2.txt`)).isDirectory);
  });
});

Deno.test("a failed recover into an empty folder leaves no file behind", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/spike.recovery.3.txt`);
    await assert.rejects(
      () => writeRecoveryFiles(dir, [shard(1, 1), shard(2, 2), shard(3, 3)]),
      CliError,
    );
    assert.deepEqual(await names(dir), ["spike.recovery.3.txt"]);
  });
});

Deno.test("recover refuses a recovery path that is a file", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "x");
    await assert.rejects(
      () => writeRecoveryFiles(`${dir}/file`, [shard(1, 1)]),
      (e: unknown) =>
        e instanceof CliError && e.exitCode === ExitCode.Usage &&
        /is not a folder/.test(e.message),
    );
    await assert.rejects(
      () => writeRecoveryFiles(`${dir}/file/sub`, [shard(1, 1)]),
      (e: unknown) =>
        e instanceof CliError && e.exitCode === ExitCode.Usage &&
        /is not a folder/.test(e.message),
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
    assert.equal(resolveRecoveryDir(), "/var/r");
    Deno.env.set("SPIKE_PILOT_RECOVERY_DIR", "rel");
    assert.equal(resolveRecoveryDir(), `${Deno.cwd()}/rel`);
    Deno.env.delete("SPIKE_PILOT_RECOVERY_DIR");
    Deno.env.set("HOME", "/home/op");
    assert.equal(resolveRecoveryDir(), "/home/op/.spike/recover");
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
