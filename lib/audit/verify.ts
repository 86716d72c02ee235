// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Verifying an audit chain (`chain.ts`) read from files: the first line
 * that was edited, removed, reordered, inserted or cut short, and lines
 * missing at the end before the newest anchor nexus keeps.
 *
 * @module
 */
import { type AuditHead, chainLink, GENESIS_PREV, lineHash } from "./chain.ts";

/** One line of a file, without its line break. */
export interface FileLine {
  /** The line's bytes. */
  readonly bytes: Uint8Array;
  /** False for a last line without a line break (cut short). */
  readonly complete: boolean;
}

/** A file's lines, in file order. */
export interface AuditSource {
  /** The file's name, for messages. */
  readonly name: string;
  /** Its lines. */
  readonly lines: AsyncIterable<FileLine>;
}

/** Where a line is. */
export interface LinePlace {
  /** The file. */
  readonly file: string;
  /** 1-based line number in the file. */
  readonly line: number;
  /** The line's sequence number. */
  readonly seq: number;
}

/** What a verification found. */
export interface VerifyReport {
  /** Chained lines read. */
  lines: number;
  /** Lines before the chain's first line that carry no chain (written
   * before audit chaining, or before the first file given). */
  unchained: number;
  /** The first chained line read. */
  first?: LinePlace;
  /** The last chained line read. */
  last?: LinePlace;
  /** The first break of the chain, in one sentence; absent when intact. */
  problem?: string;
  /** What the anchor says about the end, in one sentence. */
  end?: string;
  /** Whether the anchored line was found and matches. */
  anchorChecked: boolean;
}

const at = (p: { file: string; line: number }) => `line ${p.line} of ${p.file}`;

/**
 * Splits a byte stream into lines.
 *
 * @param stream the bytes
 * @returns the lines, without their line breaks
 */
export async function* splitLines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<FileLine> {
  let pending = new Uint8Array(0);
  for await (const chunk of stream) {
    let data = chunk;
    if (pending.length > 0) {
      data = new Uint8Array(pending.length + chunk.length);
      data.set(pending);
      data.set(chunk, pending.length);
    }
    let start = 0;
    for (let i = data.indexOf(0x0a); i >= 0; i = data.indexOf(0x0a, start)) {
      yield { bytes: data.subarray(start, i), complete: true };
      start = i + 1;
    }
    pending = data.slice(start);
  }
  if (pending.length > 0) yield { bytes: pending, complete: false };
}

/**
 * Verifies the chain across files given oldest first.
 *
 * @param sources the files, in chain order
 * @param anchor the newest head nexus anchored, if known
 * @returns the report; `problem` names the first break
 */
export async function verifyChain(
  sources: readonly AuditSource[],
  anchor?: AuditHead,
): Promise<VerifyReport> {
  const report: VerifyReport = {
    lines: 0,
    unchained: 0,
    anchorChecked: false,
  };
  let last: (LinePlace & { hash: Uint8Array }) | undefined;
  // A forward jump of the numbers: lines removed, unless a line of the gap
  // comes next (lines reordered). Decided at the next line.
  let gap:
    | { from: number; to: number; before: LinePlace; after: LinePlace }
    | undefined;
  const fail = (message: string) => {
    report.problem ??= message;
  };
  const removed = () => {
    if (!gap) return;
    const missing = gap.to - gap.from + 1;
    fail(
      `${missing} line${missing === 1 ? "" : "s"} (seq ${gap.from}${
        missing === 1 ? "" : ` to ${gap.to}`
      }) ${missing === 1 ? "is" : "are"} missing between ${
        at(gap.before)
      } and ${at(gap.after)}: removed`,
    );
  };
  files: for (const source of sources) {
    let n = 0;
    for await (const { bytes, complete } of source.lines) {
      // The first break is the one reported: what follows it cannot be
      // trusted to say more.
      if (report.problem) break files;
      n += 1;
      const place = { file: source.name, line: n };
      const link = complete ? chainLink(bytes) : undefined;
      if (!link) {
        if (!last) {
          report.unchained += 1;
          continue;
        }
        removed();
        fail(
          complete
            ? `${
              at(place)
            } is not an audit chain line: it was edited or inserted`
            : `${
              at(place)
            } is cut short: the file was truncated inside it, or nexus was killed while writing it`,
        );
        continue;
      }
      const hash = lineHash(bytes);
      report.lines += 1;
      if (gap && link.seq >= gap.from && link.seq <= gap.to) {
        fail(
          `${at(place)} (seq ${link.seq}) belongs before ${
            at(gap.after)
          } (seq ${gap.to + 1}): lines were reordered`,
        );
      }
      removed();
      gap = undefined;
      if (!last) {
        report.first = { ...place, seq: link.seq };
        if (link.seq === 1 && link.prev !== GENESIS_PREV) {
          fail(
            `${
              at(place)
            } (seq 1) was altered: the first line of a chain links to no line`,
          );
        }
      } else if (link.seq === 1 && link.prev === GENESIS_PREV) {
        fail(
          `${
            at(place)
          } starts a new chain after seq ${last.seq}: nexus started without its previous audit file's last line (the file was removed or emptied), so the lines before are not linked to it`,
        );
      } else if (link.seq <= last.seq) {
        fail(
          `${at(place)} (seq ${link.seq}) comes after seq ${last.seq} (${
            at(last)
          }): lines were reordered or repeated`,
        );
      } else if (link.seq > last.seq + 1) {
        gap = {
          from: last.seq + 1,
          to: link.seq - 1,
          before: last,
          after: { ...place, seq: link.seq },
        };
      } else if (link.prev !== last.hash.toHex()) {
        fail(
          `${at(last)} (seq ${last.seq}) was altered: ${
            at(place)
          } holds another hash of it`,
        );
      }
      if (anchor && link.seq === anchor.seq) {
        report.anchorChecked = true;
        if (hash.toHex() !== anchor.hash.toHex()) {
          fail(
            `${
              at(place)
            } (seq ${link.seq}) is not the line nexus anchored with that number: it was altered or replaced`,
          );
        }
      }
      last = { ...place, seq: link.seq, hash };
    }
  }
  removed();
  if (last) report.last = { file: last.file, line: last.line, seq: last.seq };
  if (!report.problem && anchor && (!last || last.seq < anchor.seq)) {
    const missing = anchor.seq - (last?.seq ?? 0);
    report.end = `The files end at seq ${
      last?.seq ?? 0
    }, but nexus anchored seq ${anchor.seq}: ${missing} line${
      missing === 1 ? " is" : "s are"
    } missing at the end (cut off, or in a later file not given)`;
  }
  return report;
}
