// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The audit log: one JSON line per request, to its own sink (stderr, or
 * the file in SPIKE_NEXUS_AUDIT_LOG, reopened on SIGHUP for rotation). It
 * records who did what to which path or policy and how it ended, never a
 * value or key material. Every line carries its sequence number and the hash
 * of the line before (`lib/audit/chain.ts`); the chain goes on across
 * restarts (from the file's last line) and rotations.
 *
 * @module
 */
import {
  AuditChain,
  type AuditHead,
  readAuditTail,
} from "../../lib/audit/chain.ts";
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
  readonly #chain: AuditChain;
  /** Called after each line: nexus anchors the chain's head soon after. */
  afterWrite: (() => void) | undefined;
  /**
   * The sequence number of the file's last chained line when it was
   * opened (0: none); undefined for stderr.
   */
  readonly fileEnd: number | undefined;

  private constructor(
    path: string | undefined,
    file: Deno.FsFile | undefined,
    head: AuditHead | undefined,
    fileEnd?: number,
  ) {
    this.#path = path;
    this.#file = file;
    this.#chain = new AuditChain(head);
    this.fileEnd = fileEnd;
  }

  static async #openFile(path: string): Promise<Deno.FsFile> {
    return await Deno.open(path, { append: true, create: true, mode: 0o600 });
  }

  /**
   * Opens the audit sink. The chain goes on from the file's last line, or
   * from `anchored` when that is further (the file lost lines, or there is
   * no file to read), else starts anew.
   *
   * @param path a file to append to (created 0600), or undefined for stderr
   * @param anchored the chain's head as last anchored in the store, if any
   * @returns the log
   * @throws {ConfigError} naming `SPIKE_NEXUS_AUDIT_LOG` and the path when
   *   the file cannot be opened
   */
  static async open(
    path: string | undefined,
    anchored?: AuditHead,
  ): Promise<AuditLog> {
    if (path === undefined) return new AuditLog(undefined, undefined, anchored);
    try {
      const tail = await readAuditTail(path);
      const file = await AuditLog.#openFile(path);
      // A line cut short by a crash stays as it is (verify names it); the
      // next line starts on a line of its own.
      if (tail.cut) file.writeSync(encoder.encode("\n"));
      const head = tail.head && (!anchored || tail.head.seq >= anchored.seq)
        ? tail.head
        : anchored;
      return new AuditLog(path, file, head, tail.head?.seq ?? 0);
    } catch (e) {
      throw new ConfigError(
        `SPIKE_NEXUS_AUDIT_LOG ${path} cannot be opened: ${openFailure(e)}`,
      );
    }
  }

  /** The last line written, or undefined before the first. */
  get head(): AuditHead | undefined {
    return this.#chain.head;
  }

  /**
   * Writes one record.
   *
   * @param record the record
   */
  write(record: AuditRecord): void {
    const line = encoder.encode(
      this.#chain.next(new Date().toISOString(), record),
    );
    (this.#file ?? Deno.stderr).writeSync(line);
    this.afterWrite?.();
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
    // The new file starts with a line, so the chain's head is in it.
    this.write({
      trail: newTrailId(),
      caller: null,
      route: "",
      action: "audit-reopen",
      resource: null,
      outcome: "success",
      status: 0,
      err: null,
      durationMs: 0,
    });
    log.info("Audit log reopened", { path: this.#path });
  }

  /** Closes the file sink. */
  close(): void {
    this.#file?.close();
  }
}
