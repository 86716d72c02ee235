// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Anchors of the audit chain: soon after audit lines are written, nexus
 * writes the chain's head (a line already written out) into the store,
 * MACed, and every store checkpoint hands the newest anchor to the keepers
 * (`rollback_guard.ts`). `spike pilot audit verify` asks for the newest
 * anchor to find lines missing at the end of the files.
 *
 * On PostgreSQL every replica keeps its own audit file, hence its own
 * chain: its anchor row is keyed by `SPIKE_NEXUS_REPLICA_NAME`, and the
 * keepers' checkpoints, shared by every replica, carry none.
 *
 * @module
 */
import type { AuditHead } from "../../lib/audit/chain.ts";
import type { Logger } from "../../lib/log.ts";
import type { AuditLog } from "./audit.ts";
import type { NexusStore } from "./store/open.ts";

/** The newest anchored head, and anchoring new ones. */
export class AuditAnchors {
  readonly #store: NexusStore;
  readonly #audit: AuditLog;
  readonly #name: string;
  readonly #log: Logger;
  #anchored: AuditHead | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param store where anchors are written
   * @param audit the audit log whose chain is anchored
   * @param name whose chain it is: the replica's name, "" for one nexus
   * @param log where problems are said
   */
  constructor(
    store: NexusStore,
    audit: AuditLog,
    name: string,
    log: Logger,
  ) {
    this.#store = store;
    this.#audit = audit;
    this.#name = name;
    this.#log = log;
  }

  /** The newest anchored head, undefined before the first. */
  get newest(): AuditHead | undefined {
    return this.#anchored;
  }

  /**
   * At unlock: the newest of the store's anchor and the keepers'
   * (verified checkpoints). Warns when the audit log ends before it: lines
   * were removed from its end while nexus was not running.
   *
   * @param fromKeepers the audit head of the newest valid checkpoint
   */
  async settle(fromKeepers: AuditHead | undefined): Promise<void> {
    const stored = await this.#store.auditAnchor(this.#name);
    const newest = [stored, fromKeepers, this.#anchored].reduce(
      (a, b) => (b && (!a || b.seq > a.seq) ? b : a),
      undefined,
    );
    this.#anchored = newest;
    const end = this.#audit.fileEnd;
    if (newest && end !== undefined && end < newest.seq) {
      this.#log.warn(
        "The audit log ends before the last line nexus anchored: lines were removed from its end, or it was replaced or rotated, while nexus was not running",
        { lastLine: end, anchored: newest.seq },
      );
    }
  }

  /**
   * Anchors the head within `delayMs`, unless that is pending already: one
   * store write follows each burst of audit lines.
   *
   * @param delayMs the longest wait
   */
  soon(delayMs: number): void {
    if (this.#timer !== undefined || !this.#store.unlocked) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.anchor();
    }, delayMs);
  }

  /**
   * Anchors the audit log's head in the store now, when it moved since the
   * last anchor (at shutdown too, so a restart on an emptied or rotated
   * file goes on from it exactly).
   */
  anchor(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const head = this.#audit.head;
    if (!head || (this.#anchored && head.seq <= this.#anchored.seq)) return;
    this.#anchored = head;
    this.#store.anchorAudit(head, this.#name).catch((e) =>
      this.#log.error("Audit anchor not written to the store", {
        error: (e as Error).name,
      })
    );
  }
}
