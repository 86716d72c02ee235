// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Background re-encryption of older data-key terms: every record that
 * names a term below the one active when the pass began is sealed again
 * with the active term, path by path, while nexus serves. When the pass
 * is through and no record names an older term any more, those terms'
 * keys are dropped from the keyring.
 *
 * - Bounded I/O: pages of paths at a set pace
 *   (`SPIKE_NEXUS_REENCRYPT_RATE` paths per second).
 * - Resumable: the last path done is kept in the sealed keyring after each
 *   page, so a restarted nexus goes on from there.
 * - Safe beside writers: a path is re-sealed in place (same revision, same
 *   content) only if its revision did not move since it was read; a path
 *   written meanwhile is read again. New writes seal with the active term
 *   anyway.
 *
 * @module
 */
import type { Logger } from "../../../lib/log.ts";
import {
  recordTerm,
  type SecretRecords,
  type StoreBackend,
} from "./backend.ts";
import { IntegrityError } from "./integrity.ts";
import type { KeyManager } from "./key_manager.ts";
import type { ReencryptProgress } from "./keyring.ts";
import type { RecordCipher } from "./record_cipher.ts";

/** Paths read per page. */
const PAGE = 64;
/** Attempts on one path that writers keep changing. */
const PATH_ATTEMPTS = 8;
/**
 * With replicas, how long the active term must have been active before
 * older terms go, by default: every replica reads the keyring again within
 * 10 s, and stops sealing with an older term from then on.
 */
export const SHARED_GRACE_MS = 30_000;

/** Settings of a {@linkcode Reencryption}. */
export interface ReencryptOptions {
  /** Paths per second, at most. */
  readonly pathsPerSecond: number;
  /** Where progress and problems are reported. */
  readonly log?: Logger | undefined;
  /**
   * How long the pass's term must have been active before older terms go
   * (replicas; 0 for a store one process owns).
   */
  readonly retireGraceMs: number;
}

/** The re-encryption of one store; at most one pass runs at a time. */
export class Reencryption {
  readonly #backend: StoreBackend;
  readonly #records: RecordCipher;
  readonly #keys: KeyManager;
  readonly #options: ReencryptOptions;
  #running: Promise<void> | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;

  /**
   * @param backend the store's backend
   * @param records seals and opens records
   * @param keys the keyring (progress is kept there)
   * @param options pace and log
   */
  constructor(
    backend: StoreBackend,
    records: RecordCipher,
    keys: KeyManager,
    options: ReencryptOptions,
  ) {
    this.#backend = backend;
    this.#records = records;
    this.#keys = keys;
    this.#options = options;
  }

  /** Whether a pass is running. */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /**
   * Begins a pass over every record of a term below the active one (or
   * widens the running pass to them), and runs it in the background.
   *
   * @returns the progress as recorded
   */
  async begin(): Promise<ReencryptProgress> {
    const below = this.#keys.keyring.activeTerm;
    const current = this.#keys.keyring.document.reencrypt;
    if (current?.below !== below) {
      const total = (await this.#backend.listSecretPaths({})).length;
      // A pass already under way restarts from the first path: paths it
      // did are cheap to look at again, and newer terms need it.
      await this.#keys.updateReencrypt(() => ({
        below,
        after: "",
        done: 0,
        total,
        started: new Date().toISOString(),
      }));
    }
    this.resume();
    return this.#keys.keyring.document.reencrypt!;
  }

  /** Resumes a pass the keyring records (after a restart), if any. */
  resume(): void {
    if (this.#running || this.#stopped) return;
    if (!this.#keys.keyring.document.reencrypt) return;
    this.#running = this.#run().catch((e) => {
      this.#options.log?.warn(
        "Re-encryption stopped; it resumes at the next start",
        { error: (e as Error).message },
      );
    }).finally(() => this.#running = undefined);
  }

  /** Stops the pass at the next page; its progress stays recorded. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#running;
  }

  async #run(): Promise<void> {
    const log = this.#options.log;
    const pageMs = PAGE / this.#options.pathsPerSecond * 1000;
    for (;;) {
      const progress = this.#keys.keyring.document.reencrypt;
      if (!progress || this.#stopped) return;
      const started = performance.now();
      const page = await this.#backend.readSecretRecords({
        after: progress.after,
        limit: PAGE,
      });
      if (page.length === 0) return await this.#finish(progress);
      for (const records of page) {
        if (this.#stopped) return;
        await this.#path(records, progress.below);
      }
      await this.#keys.updateReencrypt((current) =>
        samePass(current, progress)
          ? {
            ...progress,
            after: page[page.length - 1]!.path,
            done: progress.done + page.length,
          }
          : current
      );
      log?.debug("Re-encrypting", {
        done: progress.done + page.length,
        of: progress.total,
      });
      await this.#pause(pageMs - (performance.now() - started));
    }
  }

  #pause(ms: number): Promise<void> {
    if (ms <= 0 || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  // Seals again whatever of one path names a term below `below`.
  async #path(first: SecretRecords, below: number): Promise<void> {
    let r: SecretRecords | undefined = first;
    for (let attempt = 1; attempt <= PATH_ATTEMPTS && r; attempt++) {
      const path = r.path;
      const old = r.versions.filter((v) => recordTerm(v.record) < below);
      if (recordTerm(r.head) >= below && old.length === 0) return;
      try {
        const head = await this.#records.reseal(r.head, {
          table: "secrets",
          key: path,
          n: r.revision,
        });
        const versions = await Promise.all(old.map(async (v) => ({
          version: v.version,
          record: await this.#records.reseal(v.record, {
            table: "secret_versions",
            key: path,
            n: v.version,
          }),
        })));
        if (
          await this.#backend.resealSecret(path, r.revision, head, versions)
        ) {
          return;
        }
      } catch (e) {
        if (!(e instanceof IntegrityError)) throw e;
        // Left as it is: the final count keeps the older terms, and the
        // next read of the path reports the same integrity error.
        this.#options.log?.warn(
          "Re-encryption skipped a secret that fails its integrity check",
          { path, rule: e.message },
        );
        return;
      }
      // Written meanwhile: read it again. A path is never removed, and no
      // stored path sorts before itself among those it prefixes.
      [r] = await this.#backend.readSecretRecords({ prefix: path, limit: 1 });
    }
  }

  async #policies(below: number): Promise<void> {
    for (let attempt = 1; attempt <= PATH_ATTEMPTS; attempt++) {
      const snapshot = await this.#backend.readPolicies();
      const set = snapshot.set;
      if (!set) return;
      const opened = await this.#records.open(set.record, {
        table: "policy_set",
        key: "",
        n: set.generation,
      }) as { policies?: [string, number][] };
      const written = new Map(opened.policies ?? []);
      const rows = await Promise.all(
        snapshot.rows.filter((row) => recordTerm(row.record) < below)
          .map(async (row) => ({
            name: row.name,
            record: await this.#records.reseal(row.record, {
              table: "policies",
              key: row.name,
              n: written.get(row.name) ?? 0,
            }),
          })),
      );
      const record = recordTerm(set.record) < below
        ? await this.#records.reseal(set.record, {
          table: "policy_set",
          key: "",
          n: set.generation,
        })
        : set.record;
      if (
        await this.#backend.resealPolicies(set.generation, record, rows)
      ) {
        return;
      }
    }
  }

  // Waits until term `term` has been active long enough that no replica
  // still seals with an older one.
  async #grace(term: number): Promise<void> {
    const created = this.#keys.keyring.document.terms
      .find((t) => t.term === term)?.created;
    const since = created ? Date.now() - Date.parse(created) : 0;
    await this.#pause(this.#options.retireGraceMs - since);
  }

  // After the last path: the policies, then the count that decides whether
  // the older terms can go.
  async #finish(progress: ReencryptProgress): Promise<void> {
    const log = this.#options.log;
    try {
      await this.#policies(progress.below);
    } catch (e) {
      if (!(e instanceof IntegrityError)) throw e;
      log?.warn("Re-encryption skipped policies that fail their check", {
        rule: e.message,
      });
    }
    await this.#grace(progress.below);
    const left = await this.#backend.countRecordsBelowTerm(progress.below);
    if (left === 0) {
      await this.#keys.retireBelow(progress.below);
      log?.warn("Re-encryption done: the keys of older terms are dropped", {
        paths: progress.done,
        activeTerm: progress.below,
      });
    } else {
      log?.warn(
        "Re-encryption done, but some records still name older terms (see the warnings before): their keys stay",
        { records: left },
      );
    }
    await this.#keys.updateReencrypt((current) =>
      samePass(current, progress) ? null : current
    );
  }
}

// Whether `current` is still the pass `progress` belongs to (an operator
// may have begun a wider one meanwhile).
function samePass(
  current: ReencryptProgress | null,
  progress: ReencryptProgress,
): boolean {
  return current?.below === progress.below &&
    current.started === progress.started;
}
