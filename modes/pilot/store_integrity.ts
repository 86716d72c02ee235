// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike pilot operator check` and `spike pilot operator accept-rollback`:
 * check every stored row and the store digest (counts and where problems
 * are, never a value), and accept a store that nexus holds because it is
 * older than the keepers' checkpoint or fails its digest (the way back
 * after a restore from a backup).
 *
 * @module
 */
import {
  booleanFlag,
  FORMAT_OPTION,
  parseCommand,
  parseFormat,
  stringFlag,
} from "./args.ts";
import { CliError, usageError } from "./cli_error.ts";
import { ExitCode } from "./exit_codes.ts";
import { LOCKED_MESSAGE, withNexus } from "./nexus.ts";
import { render, writeStdout } from "./output.ts";
import { confirm } from "./prompt.ts";

/** Help of `spike pilot operator check`. */
export const CHECK_HELP =
  `Check every row SPIKE Nexus stores, and the store digest.

Usage:
  spike pilot operator check [-f human|json|yaml]

Nexus opens every secret head and version and every policy, checks each
path's versions against its head and the policies against the policy set,
and recomputes the store digest. It reports how many it checked and where
each problem is (path or policy and the rule it broke), never a value.
Exit 0 when nothing failed, 1 when something did. Works while nexus holds
its store. Every record is decrypted, so a large store takes a while
(raise SPIKE_HTTP_CLIENT_TIMEOUT if needed). Needs the superuser SVID
(spike/pilot/role/superuser). A route beyond upstream SPIKE.

Options:
  -f, --format F    human, json or yaml
  -h, --help        show this help`;

/** Help of `spike pilot operator accept-rollback`. */
export const ACCEPT_ROLLBACK_HELP =
  `Let SPIKE Nexus serve a store it holds as rolled back or altered.

Usage:
  spike pilot operator accept-rollback [--yes]

Nexus holds its store (its key is known, no data is served) when the store
is older than the checkpoint its keepers hold (spike.db was replaced by an
older copy, or restored from a backup), or when its rows do not match the
store digest. This command shows why, asks for confirmation (on a terminal;
else pass --yes), and accepts the store as it is: writes made after the
copy are gone, and the keepers take the accepted store's checkpoint. Run
"spike pilot operator check" first to see what fails. Needs an SVID of
spike/pilot/role/restore. A route beyond upstream SPIKE.

Options:
  -y, --yes     accept without asking
  -h, --help    show this help`;

interface Position {
  epoch: number;
  generation: number;
}

function position(value: unknown): Position | undefined {
  const p = value as Partial<Position> | null | undefined;
  return typeof p?.epoch === "number" && typeof p.generation === "number"
    ? { epoch: p.epoch, generation: p.generation }
    : undefined;
}

const describe = (p: Position) => `${p.generation} writes (epoch ${p.epoch})`;

/** One problem of a check report. */
interface Problem {
  kind?: unknown;
  name?: unknown;
  message?: unknown;
}

/**
 * The human layout of a check report.
 *
 * @param report the nexus answer
 * @returns the text
 */
export function formatCheckHuman(report: Record<string, unknown>): string {
  const digest = position(report.digest);
  const lines = [
    `Checked ${report.secrets} secrets (${report.versions} older versions) and ${report.policies} policies`,
    digest ? `Store digest: ${describe(digest)}` : "Store digest: none",
  ];
  const problems = Array.isArray(report.problems)
    ? report.problems as Problem[]
    : [];
  const count = typeof report.problemCount === "number"
    ? report.problemCount
    : problems.length;
  if (count === 0) {
    lines.push("No problem found");
  } else {
    lines.push(
      `${count} problem${count === 1 ? "" : "s"}${
        count > problems.length ? ` (the first ${problems.length})` : ""
      }:`,
    );
    for (const p of problems) lines.push(`  ${p.message}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * Runs `spike pilot operator check`.
 *
 * @param args the arguments after `check`
 * @returns the exit code
 */
export async function check(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "operator check",
    help: CHECK_HELP,
    options: FORMAT_OPTION,
  }, args);
  if (!parsed) return 0;
  const format = parseFormat(stringFlag(parsed.values, "format"));
  const report = await withNexus((nexus) => {
    nexus.requireRole("superuser", "check");
    return nexus.json("/v1/operator/check", {});
  });
  await writeStdout(render(report, format, () => formatCheckHuman(report)));
  return report.problemCount === 0 ? ExitCode.Ok : ExitCode.Failure;
}

/**
 * Runs `spike pilot operator accept-rollback`.
 *
 * @param args the arguments after `accept-rollback`
 * @returns the exit code
 */
export async function acceptRollback(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "operator accept-rollback",
    help: ACCEPT_ROLLBACK_HELP,
    options: { yes: { type: "boolean", short: "y" } },
  }, args);
  if (!parsed) return 0;
  const yes = booleanFlag(parsed.values, "yes");
  const answer = await withNexus(async (nexus) => {
    nexus.requireRole("restore", "accept-rollback");
    const status = await nexus.json("/v1/operator/status", {});
    if (status.state === "locked") {
      throw new CliError(LOCKED_MESSAGE, ExitCode.NotReady);
    }
    const integrity = (status.integrity ?? {}) as Record<string, unknown>;
    const store = position(integrity.store);
    if (status.state !== "held" || !store) {
      throw new CliError(
        "SPIKE Nexus serves its store: there is no rollback to accept",
        ExitCode.Conflict,
      );
    }
    const checkpoint = position(integrity.checkpoint);
    await writeStdout(
      `SPIKE Nexus holds its store: ${integrity.reason}\n` +
        `The store holds ${describe(store)}${
          checkpoint ? `; the keepers saw ${describe(checkpoint)}` : ""
        }.\n`,
    );
    if (!yes) {
      if (!Deno.stdin.isTerminal()) {
        throw usageError(
          "Refusing to accept the store without confirmation: stdin is not a terminal, so pass --yes",
        );
      }
      if (!(await confirm("Accept the store as it is and serve it?"))) {
        throw new CliError("Cancelled: the store stays held");
      }
    }
    return await nexus.json("/v1/operator/accept-rollback", {
      generation: store.generation,
    }, {
      conflict:
        "SPIKE Nexus refused: the store changed since its status was read; run the command again",
    });
  });
  const accepted = position(answer);
  const behind = position(answer.checkpoint);
  const lost = behind && accepted && behind.generation > accepted.generation
    ? ` The writes after this copy (${
      behind.generation - accepted.generation
    } at least) are gone.`
    : "";
  await writeStdout(
    `Accepted: SPIKE Nexus serves the store at ${
      accepted ? describe(accepted) : "its state"
    }.${lost}\n`,
  );
  return ExitCode.Ok;
}
