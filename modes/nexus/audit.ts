// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The audit log: one JSON line per request, to its own sink (stderr, or
 * the file in SPIKE_NEXUS_AUDIT_LOG, reopened on SIGHUP for rotation). It
 * records who did what to which path or policy and how it ended, never a
 * value or key material.
 *
 * @module
 */
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

/**
 * A random 8-character trail id, as upstream's.
 *
 * @returns the id
 */
export function newTrailId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => ALPHANUMERIC[b % ALPHANUMERIC.length])
    .join("");
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

/** Writes audit lines to stderr or an append-only file. */
export class AuditLog {
  readonly #path: string | undefined;
  #file: Deno.FsFile | undefined;

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
   * Writes one record.
   *
   * @param record the record
   */
  write(record: AuditRecord): void {
    const line = encoder.encode(
      JSON.stringify({ time: new Date().toISOString(), audit: record }) + "\n",
    );
    (this.#file ?? Deno.stderr).writeSync(line);
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
    const previous = this.#file;
    this.#file = next;
    previous?.close();
    log.info("Audit log reopened", { path: this.#path });
  }

  /** Closes the file sink. */
  close(): void {
    this.#file?.close();
  }
}
