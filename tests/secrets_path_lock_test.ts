// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { KeyedMutex } from "../modes/nexus/secrets/path_lock.ts";

const tick = () => new Promise((r) => setTimeout(r, 1));

Deno.test("keyed mutex runs tasks of one key one at a time, in order", async () => {
  const lock = new KeyedMutex();
  const log: string[] = [];
  let running = 0;
  await Promise.all(
    Array.from({ length: 5 }, (_, i) =>
      lock.run("k", async () => {
        running++;
        assert.equal(running, 1);
        log.push(`start ${i}`);
        await tick();
        log.push(`end ${i}`);
        running--;
      })),
  );
  assert.deepEqual(
    log,
    [0, 1, 2, 3, 4].flatMap((i) => [`start ${i}`, `end ${i}`]),
  );
});

Deno.test("keyed mutex runs different keys concurrently", async () => {
  const lock = new KeyedMutex();
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const a = lock.run("a", () => gate);
  // "b" finishes while "a" is still waiting on its gate.
  assert.equal(await lock.run("b", () => Promise.resolve("b done")), "b done");
  release();
  await a;
});

Deno.test("keyed mutex goes on after a failed task and forgets idle keys", async () => {
  const lock = new KeyedMutex();
  const failed = lock.run("k", () => Promise.reject(new Error("boom")));
  const next = lock.run("k", () => Promise.resolve(42));
  await assert.rejects(failed, /boom/);
  assert.equal(await next, 42);
  assert.equal(lock.size, 0);
});
