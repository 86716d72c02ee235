// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The SQLite group commit with the WAL synced off the main thread: the
// order of commits, syncs and acknowledgements, watched through an injected
// sync that the test holds and releases (never by timing), and from outside
// with strace on a real process: no write is acknowledged, and no read
// shows it, before the fdatasync of the WAL that holds it has returned.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { ApiError, ErrorCode } from "../lib/wire/errors.ts";
import type { SecretRow } from "../modes/nexus/store/backend.ts";
import { SqliteBackend } from "../modes/nexus/store/sqlite_backend.ts";
import { newStoreKeys } from "./store_support.ts";

const ALL = { prefix: "", after: "" };

/** A sync the test starts and ends by hand, recording what happens. */
class HeldSyncs {
  readonly events: string[] = [];
  #count = 0;
  #held: { release(): void; fail(e: Error): void }[] = [];
  #started: (() => void)[] = [];
  #free = false;

  /** The hook for `SqliteOptions.syncWal`: waits to be let go, then syncs. */
  readonly sync = async (wal: Deno.FsFile): Promise<void> => {
    const n = ++this.#count;
    this.events.push(`sync ${n} start`);
    if (!this.#free) {
      await new Promise<void>((release, fail) => {
        this.#held.push({ release, fail });
        this.#started.shift()?.();
      });
    }
    await wal.syncData();
    this.events.push(`sync ${n} end`);
  };

  /** Syncs started so far. */
  get started(): number {
    return this.#count;
  }

  /** Resolves when a sync is held (at once if one is already). */
  nextStart(): Promise<void> {
    if (this.#held.length > 0) return Promise.resolve();
    return new Promise((resolve) => this.#started.push(resolve));
  }

  /** Lets the oldest held sync go on to the real fdatasync. */
  release(): void {
    this.#held.shift()!.release();
  }

  /** Fails the oldest held sync as a disk would (EIO). */
  failOne(): void {
    this.#held.shift()!.fail(new Error("Input/output error (os error 5)"));
  }

  /** Lets every held sync go, and every later one run at once. */
  releaseAll(): void {
    this.#free = true;
    for (const h of this.#held.splice(0)) h.release();
  }
}

interface Fixture extends AsyncDisposable {
  readonly backend: SqliteBackend;
  readonly syncs: HeldSyncs;
  /** Revision of a path as another connection sees the file: committed. */
  committedRevision(path: string): number | undefined;
}

async function fixture(): Promise<Fixture> {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/data`, { mode: 0o700 });
  const syncs = new HeldSyncs();
  const backend = SqliteBackend.open(`${dir}/data`, { syncWal: syncs.sync });
  const reader = new DatabaseSync(backend.location, { readOnly: true });
  const revision = reader.prepare(
    "SELECT revision FROM secrets WHERE path = ?",
  );
  return {
    backend,
    syncs,
    committedRevision: (path) =>
      (revision.get(path) as { revision: number } | undefined)?.revision,
    async [Symbol.asyncDispose]() {
      reader.close();
      syncs.releaseAll();
      await backend.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const head = (n: number) => new Uint8Array(40).fill(n);

/** Tracks a promise's outcome in `events` without awaiting it. */
function watch<T>(events: string[], name: string, p: Promise<T>): Promise<T> {
  p.then(
    () => events.push(`${name} acked`),
    () => events.push(`${name} failed`),
  );
  return p;
}

// A few turns of the event loop, so anything already able to settle has.
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
}

Deno.test("sqlite acknowledges a write only after the WAL sync that follows its commit, while the next batch commits", async () => {
  await using f = await fixture();
  const { backend, syncs } = f;
  const events = syncs.events;

  // A first write, synced: the durable state reads see below.
  const first = watch(
    events,
    "z",
    backend.writeSecret("z", 0, { head: head(1) }),
  );
  await syncs.nextStart();
  syncs.release();
  await first;

  // Write a; its sync is held.
  const a = watch(events, "a", backend.writeSecret("a", 0, { head: head(2) }));
  await syncs.nextStart();
  assert.equal(f.committedRevision("a"), 1, "a is committed before its sync");
  assert.ok(!events.includes("a acked"), "a is acknowledged before its sync");

  // Four more writes commit while a's sync is held, none is acknowledged,
  // and no second sync starts before the first ends.
  const more = ["b", "c", "d", "e"].map((p, i) =>
    watch(events, p, backend.writeSecret(p, 0, { head: head(3 + i) }))
  );
  await turns();
  for (const p of ["b", "c", "d", "e"]) {
    assert.equal(f.committedRevision(p), 1, `${p} waits for a's sync`);
  }
  assert.equal(syncs.started, 2);
  assert.deepEqual(events.filter((e) => e.endsWith("acked")), ["z acked"]);

  // Reads of what is not on disk yet wait; others do not.
  const readA = backend.readSecret("a");
  const list = backend.listSecretPaths(ALL);
  let readDone = false;
  readA.then(() => readDone = true);
  assert.equal((await backend.readSecret("z"))?.revision, 1);
  await turns();
  assert.equal(readDone, false, "a read shows a write before its sync");
  // Writes queued while reads wait are not committed before the reads
  // ran, however many: the reads would have to wait again.
  const late = ["f", "g", "h", "i"].map((p, i) =>
    watch(events, p, backend.writeSecret(p, 0, { head: head(10 + i) }))
  );
  await turns();
  assert.equal(f.committedRevision("f"), undefined);

  const at = (e: string) => events.indexOf(e);
  syncs.release();
  await a;
  assert.ok(at("sync 2 end") < at("a acked"), events.join(", "));
  assert.equal((await readA as SecretRow).revision, 1);
  // b..e were committed after sync 2 began: the third sync acknowledges
  // them, and the list, which b..e changed, still waits for it.
  await syncs.nextStart();
  await turns();
  assert.ok(!events.some((e) => /^[b-e] acked$/.test(e)));
  assert.equal(f.committedRevision("f"), undefined);
  syncs.release();
  await Promise.all(more);
  assert.deepEqual(await list, ["a", "b", "c", "d", "e", "z"]);
  for (const p of ["b", "c", "d", "e"]) {
    assert.ok(at("sync 3 end") < at(`${p} acked`), events.join(", "));
  }
  // Then f..i commit together, and the fourth sync acknowledges them.
  await syncs.nextStart();
  assert.equal(f.committedRevision("i"), 1);
  syncs.release();
  await Promise.all(late);
  assert.ok(at("sync 4 end") < at("f acked"), events.join(", "));
});

Deno.test("sqlite close commits what is queued and waits until it is on disk", async () => {
  await using f = await fixture();
  const { backend, syncs } = f;
  const a = watch(
    syncs.events,
    "a",
    backend.writeSecret("a", 0, { head: head(1) }),
  );
  await syncs.nextStart();
  const b = watch(
    syncs.events,
    "b",
    backend.writeSecret("b", 0, { head: head(2) }),
  );
  let closed = false;
  const closing = backend.close().then(() => closed = true);
  await turns();
  assert.equal(closed, false, "close ended before the last sync");
  assert.equal(f.committedRevision("b"), 1, "close commits queued writes");
  await assert.rejects(
    backend.writeSecret("c", 0, { head: head(3) }),
    /Store is closed/,
  );
  syncs.release();
  await a;
  assert.equal(closed, false, "close ended before the last sync");
  await syncs.nextStart();
  syncs.release();
  await Promise.all([b, closing]);
  const at = (e: string) => syncs.events.indexOf(e);
  assert.ok(at("sync 1 end") < at("a acked"), syncs.events.join(", "));
  assert.ok(at("sync 2 end") < at("b acked"), syncs.events.join(", "));
});

Deno.test("sqlite failed WAL sync fails its writes, then every read and write until a restart", async () => {
  await using f = await fixture();
  const { backend, syncs } = f;
  const first = backend.writeSecret("z", 0, { head: head(1) });
  await syncs.nextStart();
  syncs.release();
  await first;

  const a = backend.writeSecret("a", 0, { head: head(2) });
  await syncs.nextStart();
  const b = backend.writeSecret("b", 0, { head: head(3) });
  syncs.failOne();
  for (const write of [a, b]) {
    await assert.rejects(write, (e) => {
      assert.ok(e instanceof ApiError);
      assert.equal(e.code, ErrorCode.StoreUnavailable);
      assert.match(e.message, /could not be synced to disk .*restart nexus/);
      return true;
    });
  }
  // The data may be committed in the file, but nothing after the failed
  // sync is trusted: reads and writes are refused.
  await assert.rejects(backend.readSecret("z"), (e) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.code, ErrorCode.Internal);
    return true;
  });
  await assert.rejects(
    backend.writeSecret("c", 0, { head: head(4) }),
    (e) => e instanceof ApiError && e.code === ErrorCode.StoreUnavailable,
  );
});

Deno.test("sqlite WAL file deleted underneath: the next write fails instead of being acknowledged", async () => {
  await using f = await fixture();
  const { backend, syncs } = f;
  syncs.releaseAll();
  await backend.writeSecret("z", 0, { head: head(1) });
  // SQLite goes on writing to the file it holds open; nothing with that
  // name is there to sync any more.
  await Deno.remove(`${backend.location}-wal`);
  await assert.rejects(
    backend.writeSecret("a", 0, { head: head(2) }),
    (e) =>
      e instanceof ApiError && e.code === ErrorCode.StoreUnavailable &&
      /could not be synced to disk/.test(e.message),
  );
  await assert.rejects(backend.readSecret("z"), ApiError);
});

Deno.test("sqlite snapshot for a backup starts only once what is committed is on disk", async () => {
  await using f = await fixture();
  const { backend, syncs } = f;
  const { meta } = await newStoreKeys(3);
  const ready = Promise.all([
    backend.initMeta(meta),
    backend.initKeyring(new Uint8Array(48).fill(9)),
  ]);
  await syncs.nextStart();
  syncs.release();
  await ready;
  const a = backend.writeSecret("a", 0, { head: head(1) });
  await syncs.nextStart();
  let opened = false;
  const snapshot = backend.openSnapshot().then((s) => (opened = true, s));
  await turns();
  assert.equal(opened, false, "a snapshot began before the sync");
  syncs.release();
  await a;
  await using s = await snapshot;
  const paths: string[] = [];
  for await (const row of s.rows()) {
    if (row.kind === "secret") paths.push(row.records.path);
  }
  assert.deepEqual(paths, ["a"]);
});

Deno.test("sqlite initMeta and other writes without a path hold every read until on disk", async () => {
  await using f = await fixture();
  const { backend, syncs } = f;
  const { meta } = await newStoreKeys(3);
  const init = backend.initMeta(meta);
  await syncs.nextStart();
  let read = false;
  const readMeta = backend.readMeta().then((m) => (read = true, m));
  const readOther = backend.readSecret("x").then(() => "read");
  await turns();
  assert.equal(read, false);
  syncs.release();
  await init;
  assert.deepEqual((await readMeta)?.storeId, meta.storeId);
  assert.equal(await readOther, "read");
});

const STRACE = await new Deno.Command("strace", { args: ["-V"] }).output()
  .then((o) => o.success, () => false);
const BACKEND_URL = new URL(
  "../modes/nexus/store/sqlite_backend.ts",
  import.meta.url,
);
const REPO = new URL("..", import.meta.url).pathname;
/** Writes of the traced process. */
const WRITES = 60;

/** One syscall event of an strace -f -y trace, in the order strace saw it. */
interface SyscallEvent {
  readonly at: "entry" | "exit";
  readonly name: string;
  /** The path of the first argument's file descriptor (`-y`). */
  readonly path: string | undefined;
  readonly line: string;
}

// Entries and exits of a `strace -f -y` trace. A call interrupted by
// another thread's is printed in two parts: `<unfinished ...>` at entry,
// `<... name resumed>` at exit. A thread stopped at a syscall exit stays
// stopped until strace has seen it, so what happens after a call returned
// (another thread woken by it) comes later in the trace.
function syscallEvents(trace: string): SyscallEvent[] {
  const pending = new Map<string, SyscallEvent>();
  const events: SyscallEvent[] = [];
  for (const line of trace.split("\n")) {
    const m = line.match(/^(\d+)\s+(.*)$/);
    if (!m) continue;
    const [, pid, rest] = m as unknown as [string, string, string];
    const resumed = rest.match(/^<\.\.\. (\w+) resumed>/);
    if (resumed) {
      const entry = pending.get(pid);
      pending.delete(pid);
      events.push({
        at: "exit",
        name: resumed[1]!,
        path: entry?.path,
        line,
      });
      continue;
    }
    const call = rest.match(/^(\w+)\((?:\d+<([^>]*)>)?/);
    if (!call) continue;
    const event = { name: call[1]!, path: call[2], line };
    events.push({ at: "entry", ...event });
    if (rest.endsWith("<unfinished ...>")) {
      pending.set(pid, { at: "exit", ...event });
    } else events.push({ at: "exit", ...event });
  }
  return events;
}

Deno.test({
  name:
    "sqlite fdatasyncs the WAL frames of every write before acknowledging it, and a new WAL's directory entry before the first (strace of a real process)",
  ignore: !STRACE,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const dataDir = `${dir}/data`;
      await Deno.mkdir(dataDir, { mode: 0o700 });
      // A store closed cleanly has no WAL file: the traced process makes it.
      await SqliteBackend.open(dataDir).close();
      const script = `${dir}/writer.ts`;
      await Deno.writeTextFile(
        script,
        `import { SqliteBackend } from "${BACKEND_URL.href}";
const backend = SqliteBackend.open(${JSON.stringify(dataDir)});
const WRITES = ${WRITES};
const revisions = new Map<string, number>();
for (let i = 1; i <= WRITES; i++) {
  const path = "p/" + (i % 6);
  // Heads of up to 250 KB: past 1,000 pages of WAL, SQLite checkpoints.
  const head = new Uint8Array(100 + (i * 99_991) % 250_000).fill(i);
  const r = await backend.writeSecret(path, revisions.get(path) ?? 0, { head });
  if (!r.ok) throw new Error("conflict on " + path);
  revisions.set(path, r.revision);
  console.log("acked " + i);
}
await backend.close();
`,
      );
      const trace = `${dir}/trace`;
      const out = await new Deno.Command("strace", {
        args: [
          "-f",
          "-y",
          "-e",
          "trace=openat,pwrite64,write,fdatasync,fsync",
          "-o",
          trace,
          Deno.execPath(),
          "run",
          "--no-lock",
          `--config=${REPO}deno.json`,
          `--allow-read=${dir},${REPO}`,
          `--allow-write=${dir}`,
          script,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      const db = `${dataDir}/spike.db`;
      const wal = `${db}-wal`;
      const events = syscallEvents(await Deno.readTextFile(trace));
      const isSync = (e: SyscallEvent) =>
        e.name === "fdatasync" || e.name === "fsync";
      // Whether the WAL was synced after its last write before event i: a
      // sync that began after that write returned and ended before i.
      const walSyncedBefore = (i: number): boolean => {
        let last = -1;
        for (let j = i - 1; j >= 0 && last < 0; j--) {
          const w = events[j]!;
          if (w.at === "exit" && w.name === "pwrite64" && w.path === wal) {
            last = j;
          }
        }
        assert.ok(last >= 0, `${events[i]!.line}: no WAL write before it`);
        const begun = events.findIndex((s, k) =>
          k > last && k < i && s.at === "entry" && isSync(s) && s.path === wal
        );
        return begun >= 0 &&
          events.slice(begun, i).some((x) =>
            x.at === "exit" && isSync(x) && x.path === wal
          );
      };
      const created = events.findIndex((e) =>
        e.name === "openat" && e.line.includes(`"${wal}"`) &&
        e.line.includes("O_CREAT")
      );
      assert.ok(created >= 0, "the traced process did not open the WAL");
      let acks = 0;
      let checkpoints = 0;
      events.forEach((e, i) => {
        // A checkpoint writing the database file copies only synced frames
        // (the write before the WAL exists turns WAL mode on).
        if (
          e.at === "entry" && e.name === "pwrite64" && e.path === db &&
          i > created && acks < WRITES
        ) {
          checkpoints++;
          assert.ok(walSyncedBefore(i), `${e.line}: checkpoint before sync`);
        }
        if (
          !(e.at === "entry" && e.name === "write" && /"acked \d+/.test(e.line))
        ) {
          return;
        }
        acks++;
        assert.ok(
          walSyncedBefore(i),
          `${e.line}: acknowledged before its WAL sync`,
        );
        if (acks === 1) {
          const dirSynced = events.slice(created, i).some((s) =>
            s.at === "exit" && isSync(s) && s.path === dataDir
          );
          assert.ok(dirSynced, "the new WAL's directory was not synced");
        }
      });
      assert.equal(acks, WRITES);
      assert.ok(checkpoints > 0, "no checkpoint ran during the writes");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
