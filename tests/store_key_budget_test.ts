// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The nonce budget across restarts on a real spike.db: counts resume at
// the end of the last reserved block (never below the encryptions made), a
// re-encryption resumes where it stopped, and a term rotates by age.
import assert from "node:assert/strict";
import { recordTerm } from "../modes/nexus/store/backend.ts";
import { DEFAULT_MAX_ENCRYPTIONS } from "../modes/nexus/store/key_manager.ts";
import { openKeyring } from "../modes/nexus/store/keyring.ts";
import { type NexusStore, openStore } from "../modes/nexus/store/open.ts";
import { freshStore } from "./store_support.ts";
import { waitFor } from "./reliability_support.ts";

async function reopen(
  dataDir: string,
  keys: Parameters<NexusStore["unlock"]>[0],
  options: { maxEncryptions?: number; rate?: number; periodMs?: number } = {},
): Promise<NexusStore> {
  const store = await openStore({
    backend: "sqlite",
    dataDir,
    maxVersions: 10,
    keyLimits: {
      maxEncryptions: options.maxEncryptions ?? DEFAULT_MAX_ENCRYPTIONS,
      rotationPeriodMs: options.periodMs,
    },
    reencryptRate: options.rate,
  });
  await store.unlock(keys);
  return store;
}

Deno.test("after a crash, counting resumes at the end of the reserved block, never below the encryptions made", async () => {
  await using f = await freshStore("sqlite", 10, {
    keyLimits: { maxEncryptions: 16_000 },
  });
  const s = f.store.secrets;
  for (let i = 0; i < 30; i++) await s.put(`p${i}`, { v: "x" });
  const made = f.store.keys.status().terms[0]!.encryptions!;
  assert.equal(made, 30);
  // A second handle on the file stands for the nexus that starts after a
  // crash: the first has not written anything since its reservation.
  const after = await reopen(f.dataDir!, f.keys.keys, {
    maxEncryptions: 16_000,
  });
  try {
    const stored = after.keys.keyring.document.terms[0]!.reserved!;
    assert.ok(stored >= made, `reserved ${stored} < made ${made}`);
    assert.equal(after.keys.status().terms[0]!.encryptions, stored);
    await after.secrets.put("q", { v: "y" });
    // Its first encryption is counted after everything reserved before.
    assert.ok(after.keys.status().terms[0]!.encryptions! > stored);
  } finally {
    await after.close();
  }
});

Deno.test("the stored reservation covers every encryption at every moment", async () => {
  await using f = await freshStore("sqlite", 10, {
    keyLimits: { maxEncryptions: 320 },
  });
  const s = f.store.secrets;
  for (let i = 0; i < 200; i++) {
    await s.put(`p${i % 13}`, { v: String(i) });
    const stored = await openKeyring(
      f.keys.keys.keyring,
      (await f.store.backend.readKeyring())!,
    );
    for (const t of f.store.keys.status().terms) {
      const reserved = stored.document.terms.find((e) => e.term === t.term)
        ?.reserved ?? 0;
      assert.ok(
        (t.encryptions ?? 0) <= reserved,
        `term ${t.term}: ${t.encryptions} made, ${reserved} reserved`,
      );
    }
  }
  assert.ok(f.store.keys.keyring.activeTerm >= 2);
});

Deno.test("a re-encryption stopped by a restart resumes where it stopped", async () => {
  await using f = await freshStore("sqlite", 10, { reencryptRate: 400 });
  const s = f.store.secrets;
  for (let i = 0; i < 600; i++) {
    await s.put(`app/${String(i).padStart(4, "0")}`, { v: String(i) });
  }
  await f.store.rotate(true);
  await waitFor(
    "a page to be done",
    () => (f.store.keys.keyring.document.reencrypt?.done ?? 0) > 0,
  );
  await f.store.close();
  const reader = await openStore({
    backend: "sqlite",
    dataDir: f.dataDir!,
    maxVersions: 10,
  });
  const { done, after } = await (async () => {
    try {
      const sealed = (await reader.backend.readKeyring())!;
      const progress = (await openKeyring(f.keys.keys.keyring, sealed)).document
        .reencrypt!;
      assert.ok(progress.done > 0 && progress.done < 600, `${progress.done}`);
      return progress;
    } finally {
      await reader.close();
    }
  })();
  assert.ok(after > "app/");
  const again = await reopen(f.dataDir!, f.keys.keys, { rate: 100_000 });
  try {
    await waitFor(
      "the pass to end",
      () => again.keys.keyring.document.reencrypt === null,
    );
    assert.equal(await again.backend.countRecordsBelowTerm(2), 0);
    assert.deepEqual(again.keys.status().terms.map((t) => t.term), [2]);
    assert.deepEqual(await again.secrets.get("app/0000"), { v: "0" });
    assert.ok(done > 0);
  } finally {
    await again.close();
  }
});

Deno.test("a term older than SPIKE_NEXUS_KEY_ROTATION_PERIOD gives way to a new one", async () => {
  await using f = await freshStore("sqlite");
  await f.store.secrets.put("a", { v: "1" });
  const store = await reopen(f.dataDir!, f.keys.keys, { periodMs: 300 });
  try {
    await waitFor(
      "a rotation by age",
      () => store.keys.keyring.activeTerm >= 2,
    );
    await store.secrets.put("a", { v: "2" });
    assert.ok(recordTerm((await store.backend.readSecret("a"))!.head) >= 2);
    assert.deepEqual(await store.secrets.get("a", 1), { v: "1" });
  } finally {
    await store.close();
  }
});
