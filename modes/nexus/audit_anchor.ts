// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Anchors of the audit chain: with each store checkpoint, nexus writes the
 * chain's head (a line already written) into the store, MACed, and hands it
 * to the keepers inside the checkpoint. `spike pilot audit verify` asks for
 * the newest anchor to find lines missing at the end of the files.
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
  readonly #log: Logger;
  #anchored: AuditHead | undefined;

  /**
   * @param store where anchors are written
   * @param audit the audit log whose chain is anchored
   * @param log where problems are said
   */
  constructor(store: NexusStore, audit: AuditLog, log: Logger) {
    this.#store = store;
    this.#audit = audit;
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
    const stored = await this.#store.auditAnchor();
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
   * The head to anchor now: the audit log's, written into the store when it
   * moved since the last anchor.
   *
   * @returns the head for the keepers' checkpoint
   */
  anchor(): AuditHead | undefined {
    const head = this.#audit.head;
    if (!head || (this.#anchored && head.seq <= this.#anchored.seq)) {
      return this.#anchored;
    }
    this.#anchored = head;
    this.#store.anchorAudit(head).catch((e) =>
      this.#log.error("Audit anchor not written to the store", {
        error: (e as Error).name,
      })
    );
    return head;
  }
}
