// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike pilot audit verify FILE…`: checks the hash chain of nexus's audit
 * files (`lib/audit/chain.ts`) and asks nexus for the newest anchor of the
 * chain, so lines cut off the end are found too.
 *
 * @module
 */
import type { AuditHead } from "../../lib/audit/chain.ts";
import { chainLink } from "../../lib/audit/chain.ts";
import {
  type AuditSource,
  splitLines,
  verifyChain,
  type VerifyReport,
} from "../../lib/audit/verify.ts";
import {
  booleanFlag,
  dispatchSubcommand,
  FORMAT_OPTION,
  parseCommand,
  parseFormat,
  stringFlag,
} from "./args.ts";
import { CliError, usageError } from "./cli_error.ts";
import { ExitCode } from "./exit_codes.ts";
import { openInputFile } from "./input_file.ts";
import { withNexus } from "./nexus.ts";
import { render, writeStdout } from "./output.ts";

/** Help of `spike pilot audit`. */
export const AUDIT_HELP = `Check SPIKE Nexus's audit log.

Usage:
  spike pilot audit verify FILE...   check the hash chain of audit files

Run "spike pilot audit verify --help" for details.`;

const VERIFY_HELP =
  `Check that audit files are whole: no line edited, removed, reordered or cut off.

Usage:
  spike pilot audit verify FILE... [--offline] [-f human|json|yaml]

Every audit line nexus writes carries its sequence number and the hash of the
line before it. Give every file of the chain, in any order (rotated ones too;
.gz files are read compressed); they are put in order by their first line.
Pilot reports the first line that was edited, removed, reordered, inserted or
cut short. Then it asks nexus for the newest line it anchored (in its store and
its keepers' checkpoints, at most SPIKE_NEXUS_CHECKPOINT_DELAY after the line)
and reports lines missing at the end; with replicas on PostgreSQL, ask the
replica that wrote the files (SPIKE_NEXUS_API_URL). With --offline nexus is not
asked and the end is not checked. Exit 0 when the files are whole, 1 when not. Needs the
superuser SVID (spike/pilot/role/superuser) unless --offline.

Options:
  --offline         check the chain only, without asking nexus
  -f, --format F    human, json or yaml
  -h, --help        show this help`;

/** Bytes read from each file's start to put the files in order. */
const PEEK_BYTES = 1024 * 1024;

function readable(file: Deno.FsFile, name: string): ReadableStream<Uint8Array> {
  return name.endsWith(".gz")
    ? file.readable.pipeThrough(new DecompressionStream("gzip"))
    : file.readable;
}

// The first chained line's sequence number, or Infinity when the file's
// start holds none.
async function firstSeq(name: string): Promise<number> {
  const file = await openInputFile(name, "Audit file");
  let read = 0;
  try {
    for await (const { bytes, complete } of splitLines(readable(file, name))) {
      read += bytes.length + 1;
      const link = complete ? chainLink(bytes) : undefined;
      if (link) return link.seq;
      if (read > PEEK_BYTES) break;
    }
  } catch (e) {
    if (e instanceof TypeError) {
      throw usageError(`Audit file "${name}" is not valid gzip`);
    }
    throw e;
  }
  return Infinity;
}

function source(name: string): AuditSource {
  return {
    name,
    lines: (async function* () {
      const file = await openInputFile(name, "Audit file");
      try {
        yield* splitLines(readable(file, name));
      } catch (e) {
        if (e instanceof TypeError) {
          throw usageError(`Audit file "${name}" is not valid gzip`);
        }
        throw e;
      }
    })(),
  };
}

function parseHead(value: unknown): AuditHead | undefined {
  const v = value as { seq?: unknown; hash?: unknown } | null | undefined;
  if (
    typeof v?.seq !== "number" || typeof v.hash !== "string" ||
    !/^[0-9a-f]{64}$/.test(v.hash)
  ) {
    return undefined;
  }
  return { seq: v.seq, hash: Uint8Array.fromHex(v.hash) };
}

interface Result extends VerifyReport {
  files: string[];
  anchor: number | null;
  written: number | null;
}

/**
 * The human layout of a verification.
 *
 * @param result the report with the files and nexus's anchor
 * @returns the text
 */
export function formatVerifyHuman(result: Result): string {
  const where = (p: { file: string; line: number; seq: number }) =>
    `seq ${p.seq} (line ${p.line} of ${p.file})`;
  const lines = [
    result.first && result.last
      ? `Checked ${result.lines} chained lines in ${result.files.length} file${
        result.files.length === 1 ? "" : "s"
      }: ${where(result.first)} to ${where(result.last)}`
      : `No chained audit line in ${result.files.join(", ")}`,
  ];
  if (result.unchained > 0) {
    lines.push(
      `${result.unchained} line${
        result.unchained === 1 ? "" : "s"
      } before the chain's first line carry no chain (written before audit chaining)`,
    );
  }
  if (result.problem) {
    lines.push(`Broken: ${result.problem}`);
  } else {
    lines.push("The chain is whole");
  }
  if (result.end) lines.push(`Broken: ${result.end}`);
  else if (result.anchor === null) {
    lines.push(
      "The end was not checked: nexus was not asked (--offline) or anchored nothing yet",
    );
  } else if (result.anchorChecked) {
    lines.push(
      `The last line nexus anchored (seq ${result.anchor}) is there and matches`,
    );
  }
  if (
    !result.problem && !result.end && result.written !== null &&
    result.last && result.written > result.last.seq
  ) {
    lines.push(
      `Nexus has written up to seq ${result.written}: lines after seq ${result.last.seq} are in the live file or not anchored yet`,
    );
  }
  return lines.join("\n") + "\n";
}

async function verify(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "audit verify",
    help: VERIFY_HELP,
    args: "FILE...",
    options: { ...FORMAT_OPTION, offline: { type: "boolean" } },
    maxPositionals: Infinity,
  }, args);
  if (!parsed) return 0;
  const format = parseFormat(stringFlag(parsed.values, "format"));
  const files = parsed.positionals;
  if (files.length === 0) {
    throw usageError("Name the audit files to check (see --help)");
  }
  const offline = booleanFlag(parsed.values, "offline");
  // Asked first: the files are read after nexus names its anchor, so every
  // anchored line was written before they are read.
  const answer = offline ? undefined : await withNexus((nexus) => {
    nexus.requireRole("superuser", "audit verify");
    return nexus.json("/v1/operator/audit-anchor", {});
  });
  const anchor = parseHead(answer?.anchor);
  const written = parseHead(answer?.head);
  const order = await Promise.all(files.map(firstSeq));
  const sorted = files.map((name, i) => ({ name, seq: order[i]! }))
    .sort((a, b) => a.seq - b.seq).map((f) => f.name);
  const report = await verifyChain(sorted.map(source), anchor);
  const result: Result = {
    ...report,
    files: sorted,
    anchor: anchor?.seq ?? null,
    written: written?.seq ?? null,
  };
  await writeStdout(render(result, format, () => formatVerifyHuman(result)));
  if (result.problem || result.end) {
    throw new CliError("The audit files are not whole", ExitCode.Failure);
  }
  return ExitCode.Ok;
}

/**
 * Runs `spike pilot audit …`.
 *
 * @param args the arguments after `audit`
 * @returns the exit code
 */
export function runAudit(args: string[]): Promise<number> {
  return dispatchSubcommand("audit", AUDIT_HELP, { verify }, args);
}
