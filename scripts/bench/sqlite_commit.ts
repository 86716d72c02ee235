// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The raw durable commit rate of `node:sqlite` on the benchmark's disk:
 * one single-row transaction after another in WAL mode with
 * `synchronous=FULL`, so every commit waits for a sync of the WAL, as every
 * nexus acknowledgement does (nexus syncs off the event loop, after
 * COMMIT). Nexus writing faster than this shows its group commit at work.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

/** Commits per second and per-commit latency. */
export interface CommitRate {
  /** Transactions committed per second. */
  readonly commitsPerSecond: number;
  /** Rows stored per second. */
  readonly rowsPerSecond: number;
  /** Median commit time in milliseconds. */
  readonly p50: number;
  /** 99th percentile commit time in milliseconds. */
  readonly p99: number;
  /** Slowest commit in milliseconds. */
  readonly max: number;
}

/**
 * Measures durable commits of `rowsPerCommit` rows each for a while.
 *
 * @param dir a directory on the same file system as the nexus data
 * @param durationMs how long to commit
 * @param valueBytes size of each row's value
 * @param rowsPerCommit rows per transaction (1: autocommit)
 * @returns the rate
 */
export async function measureCommitRate(
  dir: string,
  durationMs: number,
  valueBytes: number,
  rowsPerCommit = 1,
): Promise<CommitRate> {
  const file = `${dir}/raw-commit.db`;
  const db = new DatabaseSync(file);
  const times: number[] = [];
  try {
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
    db.exec(
      "CREATE TABLE t (id INTEGER PRIMARY KEY, path TEXT NOT NULL, v BLOB NOT NULL)",
    );
    const insert = db.prepare("INSERT INTO t (path, v) VALUES (?, ?)");
    const value = crypto.getRandomValues(new Uint8Array(valueBytes));
    const end = performance.now() + durationMs;
    let n = 0;
    while (performance.now() < end) {
      const t0 = performance.now();
      if (rowsPerCommit === 1) {
        // Autocommit: the statement is its own transaction and fsync.
        insert.run(`bench/raw/${n++}`, value);
      } else {
        db.exec("BEGIN IMMEDIATE");
        for (let i = 0; i < rowsPerCommit; i++) {
          insert.run(`bench/raw/${n++}`, value);
        }
        db.exec("COMMIT");
      }
      times.push(performance.now() - t0);
      // Let the runtime breathe (child process pipes) between commits.
      if (times.length % 64 === 0) await new Promise((r) => setTimeout(r, 0));
    }
  } finally {
    db.close();
    for (const suffix of ["", "-wal", "-shm"]) {
      await Deno.remove(file + suffix).catch(() => {});
    }
  }
  const total = times.reduce((a, b) => a + b, 0);
  times.sort((a, b) => a - b);
  const at = (q: number) =>
    times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0;
  const commitsPerSecond = total > 0 ? times.length * 1000 / total : 0;
  return {
    commitsPerSecond,
    rowsPerSecond: commitsPerSecond * rowsPerCommit,
    p50: at(0.5),
    p99: at(0.99),
    max: times[times.length - 1] ?? 0,
  };
}
