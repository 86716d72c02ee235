// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { ConfigError } from "../lib/config/env.ts";
import {
  prepareDataDir,
  resolveDataDir,
} from "../modes/nexus/store/data_dir.ts";
import { openStore } from "../modes/nexus/store/open.ts";

const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("data dir defaults to ~/.spike/data", () => {
  assert.equal(
    resolveDataDir(envOf({ HOME: "/home/alice" })),
    "/home/alice/.spike/data",
  );
  assert.equal(
    resolveDataDir(envOf({ HOME: "/home/alice", SPIKE_NEXUS_DATA_DIR: " " })),
    "/home/alice/.spike/data",
  );
});

Deno.test("data dir without HOME or the variable is an error", () => {
  assert.throws(() => resolveDataDir(envOf({})), ConfigError);
  assert.throws(() => resolveDataDir(envOf({ HOME: "relative" })), ConfigError);
});

Deno.test("data dir refuses system directories and their subpaths", () => {
  for (
    const dir of [
      "/",
      "/etc",
      "/etc/spike",
      "/usr/local/spike",
      "/proc/1",
      "/root/x",
    ]
  ) {
    assert.throws(
      () => resolveDataDir(envOf({ SPIKE_NEXUS_DATA_DIR: dir })),
      (e: unknown) =>
        e instanceof ConfigError && /system directories/.test(e.message),
      dir,
    );
  }
  // A name that only starts like a system directory is fine.
  assert.equal(
    resolveDataDir(envOf({ SPIKE_NEXUS_DATA_DIR: "/etcetera" })),
    "/etcetera",
  );
});

Deno.test("data dir refuses a path that reaches a system directory through a link", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.symlink("/etc", `${tmp}/link`);
    assert.throws(
      () =>
        resolveDataDir(envOf({ SPIKE_NEXUS_DATA_DIR: `${tmp}/link/spike` })),
      ConfigError,
    );
    assert.throws(
      () =>
        resolveDataDir(
          envOf({ SPIKE_NEXUS_DATA_DIR: `${tmp}/x/../../../etc/y` }),
        ),
      ConfigError,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("data dir needs an existing parent and resolves relative paths", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    assert.throws(
      () => resolveDataDir(envOf({ SPIKE_NEXUS_DATA_DIR: `${tmp}/no/data` })),
      (e: unknown) =>
        e instanceof ConfigError && /does not exist/.test(e.message),
    );
    assert.equal(
      resolveDataDir(envOf({ SPIKE_NEXUS_DATA_DIR: `${tmp}/data` })),
      `${tmp}/data`,
    );
    const rel = resolveDataDir(envOf({ SPIKE_NEXUS_DATA_DIR: "spike-data" }));
    assert.equal(rel, `${Deno.cwd()}/spike-data`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("prepareDataDir creates 0700 directories and tightens existing ones", async () => {
  const tmp = await Deno.makeTempDir();
  const previous = Deno.umask(0o000);
  try {
    prepareDataDir(`${tmp}/home/.spike/data`);
    assert.equal(
      (await Deno.stat(`${tmp}/home/.spike/data`)).mode! & 0o777,
      0o700,
    );
    assert.equal((await Deno.stat(`${tmp}/home/.spike`)).mode! & 0o777, 0o700);
    await Deno.mkdir(`${tmp}/loose`, { mode: 0o755 });
    prepareDataDir(`${tmp}/loose`);
    assert.equal((await Deno.stat(`${tmp}/loose`)).mode! & 0o777, 0o700);
    await Deno.writeTextFile(`${tmp}/file`, "");
    assert.throws(() => prepareDataDir(`${tmp}/file`), ConfigError);
  } finally {
    Deno.umask(previous);
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("openStore uses SPIKE_NEXUS_DATA_DIR when no directory is given", async () => {
  const tmp = await Deno.makeTempDir();
  const previous = Deno.env.get("SPIKE_NEXUS_DATA_DIR");
  Deno.env.set("SPIKE_NEXUS_DATA_DIR", `${tmp}/nexus`);
  try {
    const store = await openStore({ backend: "sqlite", maxVersions: 10 });
    assert.equal(store.backend.location, `${tmp}/nexus/spike.db`);
    await store.close();
    assert.ok((await Deno.stat(`${tmp}/nexus/spike.db`)).isFile);
  } finally {
    if (previous === undefined) Deno.env.delete("SPIKE_NEXUS_DATA_DIR");
    else Deno.env.set("SPIKE_NEXUS_DATA_DIR", previous);
    await Deno.remove(tmp, { recursive: true });
  }
});
