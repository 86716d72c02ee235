// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The audit log: one JSON line per request, to its own sink (stderr, or
 * the file in SPIKE_NEXUS_AUDIT_LOG). It records who did what to which
 * path or policy and how it ended, never a value or key material.
 *
 * @module
 */

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

/** Writes audit lines to stderr or an append-only file. */
export class AuditLog {
  readonly #file: Deno.FsFile | undefined;

  private constructor(file: Deno.FsFile | undefined) {
    this.#file = file;
  }

  /**
   * Opens the audit sink.
   *
   * @param path a file to append to (created 0600), or undefined for stderr
   * @returns the log
   */
  static async open(path: string | undefined): Promise<AuditLog> {
    if (path === undefined) return new AuditLog(undefined);
    const file = await Deno.open(path, {
      append: true,
      create: true,
      mode: 0o600,
    });
    return new AuditLog(file);
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

  /** Closes the file sink. */
  close(): void {
    this.#file?.close();
  }
}
