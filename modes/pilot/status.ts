// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike pilot status`: whether nexus is locked, its Shamir settings,
 * restore progress and what it knows about each keeper.
 *
 * @module
 */
import {
  FORMAT_OPTION,
  parseCommand,
  parseFormat,
  stringFlag,
} from "./args.ts";
import { ExitCode } from "./exit_codes.ts";
import { withNexus } from "./nexus.ts";
import { formatTime, render, writeStdout } from "./output.ts";
import { keyStatusLines } from "./key_status.ts";

const STATUS_HELP =
  `Show SPIKE Nexus's state: locked or unlocked, shards, restore progress,
the root key's id and age and its last recovery export, data-key terms and
re-encryption progress, keepers, and (on PostgreSQL) every replica and which
one leads the push loop.

Usage:
  spike pilot status [-f human|json|yaml]

Nexus asks every keeper now; an unlocked nexus gives a keeper found without
its share (restarted since the last push) its shard before answering. Works
while nexus is locked. Needs an SVID of a pilot role (superuser, recover or
restore).

Options:
  -f, --format F    human, json or yaml
  -h, --help        show this help`;

function keeperLine(keeper: Record<string, unknown>): string {
  const parts: string[] = [];
  parts.push(
    keeper.reachable === true
      ? "reachable"
      : keeper.reachable === false
      ? "unreachable"
      : "not contacted yet",
  );
  if (keeper.holdsShard === true) parts.push("holds its shard");
  if (keeper.holdsShard === false) parts.push("does not hold its shard");
  if (typeof keeper.lastPush === "string") {
    parts.push(`last push ${formatTime(keeper.lastPush)}`);
  }
  let line = `  ${keeper.index ?? "?"}  ${keeper.url ?? "?"}  ${
    parts.join(", ")
  }`;
  if (typeof keeper.lastError === "string" && keeper.lastError !== "") {
    line += ` (last error: ${keeper.lastError})`;
  }
  return line;
}

function replicaLine(replica: Record<string, unknown>): string {
  const name = typeof replica.name === "string" && replica.name !== ""
    ? replica.name
    : `replica ${replica.id ?? "?"}`;
  return `  ${replica.pushLeader === true ? "*" : " "} ${name}  ${
    replica.address ?? "address unknown"
  }  pid ${replica.pid ?? "?"}  ${replica.state ?? "unknown"}  seen ${
    replica.secondsSinceSeen ?? "?"
  } s ago${replica.self === true ? "  (answered this call)" : ""}`;
}

/**
 * The human layout of a status answer.
 *
 * @param status the nexus answer
 * @returns the text
 */
export function formatStatusHuman(status: Record<string, unknown>): string {
  const restore = (status.restore ?? {}) as Record<string, unknown>;
  const keepers = Array.isArray(status.keepers)
    ? status.keepers as Record<string, unknown>[]
    : [];
  const lines = [
    `State:    ${status.state ?? "unknown"}`,
    `Backend:  ${status.backend ?? "unknown"}`,
    typeof status.threshold === "number"
      ? `Shards:   ${status.threshold} of ${status.shares} restore the root key`
      : "Shards:   none (no keepers)",
  ];
  if (status.state === "locked" && typeof restore.remaining === "number") {
    lines.push(
      `Restore:  ${
        restore.collected ?? 0
      } collected, ${restore.remaining} remaining`,
    );
  }
  lines.push(...keyStatusLines(status));
  lines.push(keepers.length === 0 ? "Keepers:  none" : "Keepers:");
  lines.push(...keepers.map(keeperLine));
  if (status.database === "unreachable") {
    lines.push("Replicas: unknown (this replica cannot reach the database)");
  } else if (Array.isArray(status.replicas)) {
    lines.push("Replicas: (* leads the keeper push loop)");
    lines.push(
      ...(status.replicas as Record<string, unknown>[]).map(replicaLine),
    );
  }
  return lines.join("\n") + "\n";
}

/**
 * Runs `spike pilot status`.
 *
 * @param args the arguments after `status`
 * @returns the exit code
 */
export async function runStatus(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "status",
    help: STATUS_HELP,
    options: FORMAT_OPTION,
  }, args);
  if (!parsed) return 0;
  const format = parseFormat(stringFlag(parsed.values, "format"));
  const status = await withNexus((nexus) =>
    nexus.json("/v1/operator/status", { probe: true })
  );
  await writeStdout(
    render(status, format, () => formatStatusHuman(status)),
  );
  return ExitCode.Ok;
}
