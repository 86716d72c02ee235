// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The audit log: one JSON line per request, to its own sink (stderr, or
 * the file in SPIKE_NEXUS_AUDIT_LOG, reopened on SIGHUP for rotation). It
 * records who did what to which path or policy and how it ended, never a
 * value or key material.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { ConfigError } from "../../lib/config/env.ts";
import type { Logger } from "../../lib/log.ts";

/** One audit record. */
export interface AuditRecord {
  /** Random id tying the line to operational log lines. */
  trail: string;
  /** The caller's SPIFFE ID, when the TLS layer verified one. */
  caller: string | null;
  /** The route path. */
  route: string;
  /** The `?action=` value, or the default action's name. */
  action: string;
  /** The secret path or policy name the request named, when any. */
  resource: string | null;
  /** "success", "denied", "refused" or "error". */
  outcome: string;
  /** HTTP status sent. */
  status: number;
  /** The wire error code, when any. */
  err: string | null;
  /** Milliseconds spent. */
  durationMs: number;
  /**
   * For refused connections counted together: how many, from the source in
   * `caller`, after the one audited on its own (absent for single events).
   */
  count?: number;
}

const encoder = new TextEncoder();
const ALPHANUMERIC =
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

const TRAIL_LENGTH = 8;
// Random bytes for trail ids, drawn 512 ids at a time: one
// getRandomValues call per request showed in the read profile.
const trailPool = new Uint8Array(TRAIL_LENGTH * 512);
let trailNext = trailPool.length;

/**
 * A random 8-character trail id, as upstream's.
 *
 * @returns the id
 */
export function newTrailId(): string {
  if (trailNext === trailPool.length) {
    crypto.getRandomValues(trailPool);
    trailNext = 0;
  }
  let id = "";
  for (let i = 0; i < TRAIL_LENGTH; i++) {
    id += ALPHANUMERIC[trailPool[trailNext++]! % ALPHANUMERIC.length];
  }
  return id;
}

// Why a file did not open, in words; the OS text ("No such file or
// directory (os error 2)") says neither which file nor what to do.
function openFailure(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "its folder does not exist";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.IsADirectory) return "it is a folder";
  if (e instanceof Deno.errors.NotADirectory) {
    return "a part of its path is not a folder";
  }
  const message = (e instanceof Error ? e.message : String(e)).split("\n")[0]!
    .replace(/ \(os error \d+\)/, "");
  return /^[A-Z][a-z]/.test(message)
    ? message.charAt(0).toLowerCase() + message.slice(1)
    : message;
}

interface Waiter {
  resolve(): void;
  reject(e: unknown): void;
}

/**
 * Writes audit lines to stderr or an append-only file, in the order they
 * were given. Lines given during one turn of the event loop go out in one
 * write right after it (group write): one system call per turn instead of
 * one per request. {@linkcode AuditLog.write} settles once its line was
 * handed to the operating system, as the write per line before did, so a
 * request is still answered only after its line is written.
 */
export class AuditLog {
  readonly #path: string | undefined;
  #file: Deno.FsFile | undefined;
  #lines: Uint8Array[] = [];
  #waiters: Waiter[] = [];

  private constructor(path: string | undefined, file: Deno.FsFile | undefined) {
    this.#path = path;
    this.#file = file;
  }

  static async #openFile(path: string): Promise<Deno.FsFile> {
    return await Deno.open(path, { append: true, create: true, mode: 0o600 });
  }

  /**
   * Opens the audit sink.
   *
   * @param path a file to append to (created 0600), or undefined for stderr
   * @returns the log
   * @throws {ConfigError} naming `SPIKE_NEXUS_AUDIT_LOG` and the path when
   *   the file cannot be opened
   */
  static async open(path: string | undefined): Promise<AuditLog> {
    if (path === undefined) return new AuditLog(undefined, undefined);
    try {
      return new AuditLog(path, await AuditLog.#openFile(path));
    } catch (e) {
      throw new ConfigError(
        `SPIKE_NEXUS_AUDIT_LOG ${path} cannot be opened: ${openFailure(e)}`,
      );
    }
  }

  /**
   * Queues one record behind every earlier one; the queue is written after
   * the current turn of the event loop.
   *
   * @param record the record
   * @returns settles once the line was written; rejects when it could not
   *   be (the lines written with it share the outcome)
   */
  write(record: AuditRecord): Promise<void> {
    if (this.#lines.length === 0) setImmediate(() => this.#flush());
    this.#lines.push(encoder.encode(
      JSON.stringify({ time: new Date().toISOString(), audit: record }) + "\n",
    ));
    const written = Promise.withResolvers<void>();
    this.#waiters.push(written);
    return written.promise;
  }

  // Synchronous, so a file is never swapped or closed during a write.
  #flush(): void {
    if (this.#lines.length === 0) return;
    const lines = this.#lines;
    const waiters = this.#waiters;
    this.#lines = [];
    this.#waiters = [];
    try {
      writeAll(this.#file ?? Deno.stderr, concat(lines));
    } catch (e) {
      for (const w of waiters) w.reject(e);
      return;
    }
    for (const w of waiters) w.resolve();
  }

  /**
   * Writes what is queued to the current file, then points later lines at
   * `next` and closes the previous file: the one step rotation and reopen
   * need. A line is never split between two files.
   *
   * @param next the new file
   */
  #swap(next: Deno.FsFile): void {
    this.#flush();
    const previous = this.#file;
    this.#file = next;
    previous?.close();
  }

  /**
   * Opens the file again by its name, for log rotation (logrotate moves the
   * file, then sends SIGHUP): later lines go to a new file at that path.
   * When the new file cannot be opened, lines keep going to the old one.
   *
   * @param log where to say what happened
   */
  async reopen(log: Logger): Promise<void> {
    if (this.#path === undefined) return;
    let next: Deno.FsFile;
    try {
      next = await AuditLog.#openFile(this.#path);
    } catch (e) {
      log.error("Audit log not reopened; writing to the previous file", {
        path: this.#path,
        reason: openFailure(e),
      });
      return;
    }
    this.#swap(next);
    log.info("Audit log reopened", { path: this.#path });
  }

  /** Writes what is queued, then closes the file sink. */
  close(): void {
    this.#flush();
    this.#file?.close();
  }
}

function writeAll(
  sink: { writeSync(p: Uint8Array): number },
  data: Uint8Array,
): void {
  let offset = 0;
  while (offset < data.length) {
    offset += sink.writeSync(data.subarray(offset));
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
