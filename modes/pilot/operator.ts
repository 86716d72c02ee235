// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike pilot operator recover|restore|drill`: export the recovery shards
 * to files, feed shards back to a nexus that lost its keepers, and rehearse
 * a restore without changing anything. Shard bytes never become JS strings:
 * bodies are built and read as bytes and zeroed after use.
 *
 * @module
 */
import { resolveRecoveryDir } from "../../lib/config/recovery_dir.ts";
import { isAllZero, zero } from "../../lib/crypto/zero.ts";
import { isShardIndex, type Shard } from "../../lib/shard/mod.ts";
import {
  JsonBytesError,
  JsonBytesWriter,
  type JsonValue,
  parseJsonBytes,
  takeShardArray,
} from "../../lib/wire/json_bytes.ts";
import {
  dispatchSubcommand,
  FORMAT_OPTION,
  parseCommand,
  parseFormat,
  stringFlag,
} from "./args.ts";
import { CliError, lowerFirst, usageError } from "./cli_error.ts";
import { ExitCode } from "./exit_codes.ts";
import { type NexusSession, withNexus } from "./nexus.ts";
import { render, writeStderr, writeStdout } from "./output.ts";
import { openInputFile } from "./input_file.ts";
import { findRecoveryFiles, writeRecoveryFiles } from "./recovery_files.ts";
import {
  parseShardInput,
  readPipedInput,
  readShardInput,
} from "./shard_input.ts";

/** Help of `spike pilot operator`. */
export const OPERATOR_HELP =
  `Disaster recovery and lifecycle of SPIKE Nexus's keys and store.

Usage:
  spike pilot operator recover           save the recovery shards to files
  spike pilot operator restore [file]    give nexus one shard (repeat until restored)
  spike pilot operator drill [files...]  check shards would restore, change nothing
  spike pilot operator push              give every keeper its shard now
  spike pilot operator rotate            start a new data-key term
  spike pilot operator rekey             replace the root key and its split
  spike pilot operator backup -o FILE    save a backup of the store

recover needs an SVID of spike/pilot/role/recover; restore and drill need
spike/pilot/role/restore; push, rotate, rekey and backup need the
superuser. Run "spike pilot operator <command> --help" for details.`;

const PUSH_HELP = `Give every keeper its shard now, instead of at the next push.

Usage:
  spike pilot operator push

Nexus pushes the shards every SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL, and
retries a keeper that lacks its share within seconds. Use this after
restarting keepers, or to check that every keeper takes its share: exit 0
when all do; else exit 1 naming the keepers that did not and why. Needs the
superuser SVID (spike/pilot/role/superuser); nexus must be unlocked. A route
beyond upstream SPIKE (POST /v1/operator/push).

Options:
  -h, --help    show this help`;

const RECOVER_HELP = `Save SPIKE Nexus's recovery shards, one file per shard.

Usage:
  spike pilot operator recover

Writes spike.recovery.<i>.txt (mode 0600) for every shard into the recovery
folder: SPIKE_PILOT_RECOVERY_DIR, else ~/.spike/recover. A missing folder is
made with mode 0700; an existing one open to group or others is refused. The
files are replaced all at once, and older spike.recovery.<i>.txt files are
removed afterwards. Needs an SVID of spike/pilot/role/recover. Encrypt the files, store them apart, and erase
them from the folder.

Options:
  -h, --help    show this help`;

const RESTORE_HELP =
  `Give SPIKE Nexus one recovery shard, when it lost its root key and its keepers.

Usage:
  spike pilot operator restore
  spike pilot operator restore spike.recovery.2.txt
  spike pilot operator restore < spike.recovery.2.txt

On a terminal the shard is read hidden (type or paste, then Enter); from a
file or a pipe up to 4096 bytes are read. A shard wrapped over lines or in
uppercase hex is accepted. Run once per shard until nexus reports it is
restored. Needs an SVID of spike/pilot/role/restore.

Options:
  -h, --help    show this help`;

const DRILL_HELP =
  `Check that recovery shards would restore this SPIKE Nexus, without changing anything.

Usage:
  spike pilot operator drill [files...] [-f human|json|yaml]

Reads the given recovery files, or else every spike.recovery.<i>.txt in the
recovery folder (SPIKE_PILOT_RECOVERY_DIR, else ~/.spike/recover), and asks
nexus whether each is a valid shard and whether together they reach the
threshold. Exit code 0 when they would restore, 1 when not. Needs an SVID of
spike/pilot/role/restore.

Options:
  -f, --format F    human, json or yaml
  -h, --help        show this help`;

/**
 * Reads the shards of a recover answer `{"shards": {"<i>": [32 ints]}}`.
 * The answer bytes are zeroed.
 *
 * @param body the answer body
 * @returns the shards ordered by index; the caller zeroes their values
 * @throws {CliError} when the answer is malformed or holds an empty shard
 */
export function readRecoverAnswer(body: Uint8Array): Shard[] {
  let answer: JsonValue;
  try {
    answer = parseJsonBytes(body, { plainIntegers: true });
  } catch (e) {
    if (e instanceof JsonBytesError) {
      throw new CliError("SPIKE Nexus answered recover with invalid JSON");
    }
    throw e;
  } finally {
    zero(body);
  }
  const map = answer !== null && typeof answer === "object" &&
      !Array.isArray(answer)
    ? answer.shards
    : undefined;
  if (map === null || typeof map !== "object" || Array.isArray(map)) {
    throw new CliError("SPIKE Nexus answered recover without shards");
  }
  const shards: Shard[] = [];
  const fail = (message: string): never => {
    for (const s of shards) zero(s.value);
    // Wipe the share numbers still held by the parsed answer.
    for (const v of Object.values(map)) if (Array.isArray(v)) v.fill(0);
    throw new CliError(message);
  };
  for (const [key, value] of Object.entries(map)) {
    const index = Number(key);
    const shard = takeShardArray(value);
    if (!/^[1-9]\d*$/.test(key) || !isShardIndex(index) || !shard) {
      zero(shard);
      fail("SPIKE Nexus answered recover with a malformed shard");
    }
    shards.push({ index, value: shard! });
    if (isAllZero(shard!)) {
      fail("SPIKE Nexus answered recover with an empty shard");
    }
  }
  if (shards.length === 0) fail("SPIKE Nexus answered recover without shards");
  return shards.sort((a, b) => a.index - b.index);
}

/** The lines `recover` prints after saving (upstream's instructions). */
export function recoverInstructions(dir: string): string {
  return [
    "",
    "  SPIKE Recovery shards saved to the recovery directory:",
    `  ${dir}`,
    "",
    "  Please make sure that:",
    "    1. You encrypt these shards and keep them safe.",
    "    2. Securely erase the shards from the",
    "       recovery directory after you encrypt them",
    "       and save them to a safe location.",
    "",
    "  If you lose these shards, you will not be able to recover",
    "  SPIKE Nexus in the unlikely event of a total system crash.",
    "",
  ].join("\n") + "\n";
}

async function recover(args: string[]): Promise<number> {
  const parsed = parseCommand(
    { name: "operator recover", help: RECOVER_HELP },
    args,
  );
  if (!parsed) return 0;
  const dir = resolveRecoveryDir();
  const shards = await withNexus(async (nexus) => {
    nexus.requireRole("recover", "recover");
    const { body } = await nexus.post("/v1/operator/recover", "{}", {
      badRequest: "SPIKE Nexus has no recovery shards",
    });
    return readRecoverAnswer(body);
  });
  try {
    await writeRecoveryFiles(dir, shards);
  } finally {
    for (const s of shards) zero(s.value);
  }
  await writeStdout(recoverInstructions(dir));
  return ExitCode.Ok;
}

/**
 * The restore request body `{"id": i, "shard": [32 ints]}`, built as bytes.
 *
 * @param shard the shard
 * @returns the body; the caller zeroes it
 */
export function restoreRequestBody(shard: Shard): Uint8Array {
  return new JsonBytesWriter()
    .raw(`{"id":${shard.index},"shard":`)
    .byteArray(shard.value)
    .raw("}")
    .finish();
}

/** What nexus reports after a restore shard. */
export interface RestoreStatus {
  /** Shards collected so far. */
  collected: number;
  /** Shards still needed. */
  remaining: number;
  /** Whether nexus has its root key back. */
  restored: boolean;
}

/**
 * The text `restore` prints for a nexus answer.
 *
 * @param status the answer
 * @returns the text
 */
export function formatRestoreStatus(status: RestoreStatus): string {
  if (status.restored) {
    return "SPIKE is now restored and ready to use.\n" +
      'Next steps: README.md, "Operations on bare metal" > "Recovery runbook", step 5 (switch back to the superuser identity; the recovery files stay valid).\n';
  }
  return `Shards collected: ${status.collected}\n` +
    `Shards remaining: ${status.remaining}\n` +
    "Please run `spike pilot operator restore` again to provide the remaining shards.\n";
}

// Nexus answers 409 both when it is unlocked and when it already holds
// this shard index; its state tells the two apart.
async function restoreConflict(
  nexus: NexusSession,
  index: number,
): Promise<CliError> {
  const status = await nexus.json("/v1/operator/status", {});
  return new CliError(
    status.state === "unlocked"
      ? "SPIKE Nexus is already unlocked: it needs no restore"
      : `SPIKE Nexus already holds shard ${index} from this restore: give another shard`,
    ExitCode.Conflict,
  );
}

async function restore(args: string[]): Promise<number> {
  const parsed = parseCommand(
    {
      name: "operator restore",
      help: RESTORE_HELP,
      args: "[file]",
      maxPositionals: 1,
    },
    args,
  );
  if (!parsed) return 0;
  const file = parsed.positionals[0];
  const { answer, keepers } = await withNexus(async (nexus) => {
    // The role is checked before the operator types a shard for nothing.
    nexus.requireRole("restore", "restore");
    const input = file === undefined || file === "-"
      ? await readShardInput()
      : await readShardFileInput(file);
    let shard: Shard;
    try {
      shard = parseShardInput(input);
    } finally {
      zero(input);
    }
    const body = restoreRequestBody(shard);
    zero(shard.value);
    try {
      const answer = await nexus.json("/v1/operator/restore", body, {
        badRequest: `SPIKE Nexus rejected shard ${shard.index}`,
      });
      // Nexus pushed the shards before answering: say which keepers hold
      // theirs, so "ready" never hides keepers that are still down.
      const keepers = answer.restored === true
        ? keeperViews(await nexus.json("/v1/operator/status", {}))
        : [];
      return { answer, keepers };
    } catch (e) {
      if (e instanceof CliError && e.exitCode === ExitCode.Conflict) {
        throw await restoreConflict(nexus, shard.index);
      }
      throw e;
    } finally {
      zero(body);
    }
  });
  const status: RestoreStatus = {
    collected: Number(answer.collected ?? 0),
    remaining: Number(answer.remaining ?? 0),
    restored: answer.restored === true,
  };
  await writeStdout(formatRestoreStatus(status));
  const holding = keepers.filter((k) => k.holdsShard === true).length;
  if (status.restored && holding < keepers.length) {
    await writeStderr(
      `Warning: only ${holding} of ${keepers.length} keepers took their shard (${
        lackingKeepers(keepers)
      }); nexus retries them within seconds, and "spike pilot status" shows them\n`,
    );
  } else if (status.restored && holding > 0) {
    await writeStdout(`All ${holding} keepers hold their shard again.\n`);
  }
  return ExitCode.Ok;
}

async function readShardFileInput(file: string): Promise<Uint8Array> {
  const handle = await openInputFile(file, "Shard file");
  try {
    return await readPipedInput(handle);
  } finally {
    handle.close();
  }
}

/** One file's outcome in a drill. */
export interface DrillEntry {
  /** The file. */
  file: string;
  /** The shard index, when the file could be read. */
  index: number | null;
  /** Whether nexus accepted the shard. */
  valid: boolean;
  /** Why it is not valid (never quotes the file). */
  reason: string | null;
}

/** A drill's outcome. */
export interface DrillReport {
  /** Per file, in the order given. */
  files: DrillEntry[];
  /** Whether these shards would restore nexus. */
  wouldRestore: boolean;
  /** Shards needed. */
  threshold: number | null;
}

/**
 * The human layout of a drill report.
 *
 * @param report the report
 * @returns the text
 */
export function formatDrillHuman(report: DrillReport): string {
  const lines = report.files.map((entry) => {
    const label = entry.index === null
      ? entry.file
      : `${entry.file} (shard ${entry.index})`;
    return entry.valid
      ? `OK         ${label}`
      : `NOT VALID  ${label}: ${entry.reason ?? "rejected"}`;
  });
  const valid = report.files.filter((e) => e.valid).length;
  const threshold = report.threshold ?? "?";
  lines.push(
    report.wouldRestore
      ? `These shards would restore SPIKE Nexus (${valid} valid, threshold ${threshold}).`
      : `These shards would NOT restore SPIKE Nexus (${valid} valid, threshold ${threshold}).`,
  );
  return lines.join("\n") + "\n";
}

async function readShardFile(
  file: string,
): Promise<{ shard?: Shard; reason?: string }> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { reason: "no such file" };
    if (e instanceof Deno.errors.IsADirectory) return { reason: "a folder" };
    throw e;
  }
  try {
    return { shard: parseShardInput(bytes) };
  } catch (e) {
    if (e instanceof CliError) return { reason: lowerFirst(e.message) };
    throw e;
  } finally {
    zero(bytes);
  }
}

async function drill(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "operator drill",
    help: DRILL_HELP,
    options: FORMAT_OPTION,
    maxPositionals: Infinity,
  }, args);
  if (!parsed) return 0;
  const format = parseFormat(stringFlag(parsed.values, "format"));
  let files = parsed.positionals;
  if (files.length === 0) {
    const dir = resolveRecoveryDir();
    files = await findRecoveryFiles(dir);
    if (files.length === 0) {
      throw usageError(
        `No recovery files (spike.recovery.<i>.txt) in "${dir}": name the files to check`,
      );
    }
  }
  const report = await withNexus(async (nexus) => {
    nexus.requireRole("restore", "drill");
    const status = await nexus.json("/v1/operator/status", {});
    const shares = typeof status.shares === "number" ? status.shares : null;
    if (shares === null) {
      throw new CliError(
        "SPIKE Nexus keeps no recovery shards: it runs without keepers (memory backend)",
      );
    }
    const entries: DrillEntry[] = [];
    const sent = new Map<number, DrillEntry>();
    const writer = new JsonBytesWriter().raw('{"shards":[');
    for (const file of files) {
      const { shard, reason } = await readShardFile(file);
      const entry: DrillEntry = {
        file,
        index: shard?.index ?? null,
        valid: false,
        reason: reason ?? null,
      };
      entries.push(entry);
      if (!shard) continue;
      if (shard.index > shares) {
        entry.reason =
          `shard index ${shard.index} is beyond this installation's ${shares} shards`;
      } else if (sent.has(shard.index)) {
        entry.reason = `same shard index as ${sent.get(shard.index)!.file}`;
      } else {
        writer.raw(`${sent.size > 0 ? "," : ""}{"id":${shard.index},"shard":`)
          .byteArray(shard.value).raw("}");
        sent.set(shard.index, entry);
      }
      zero(shard.value);
    }
    const body = writer.raw("]}").finish();
    let answer: Record<string, unknown>;
    try {
      answer = await nexus.json("/v1/operator/drill", body, {
        badRequest: "SPIKE Nexus refused the drill request as invalid",
      });
    } finally {
      zero(body);
    }
    const valid = new Set(Array.isArray(answer.valid) ? answer.valid : []);
    for (const [index, entry] of sent) {
      entry.valid = valid.has(index);
      if (!entry.valid) entry.reason = "not a shard of this installation";
    }
    return {
      files: entries,
      wouldRestore: answer.wouldRestore === true,
      threshold: typeof answer.threshold === "number" ? answer.threshold : null,
    } satisfies DrillReport;
  });
  await writeStdout(
    render(
      { ...report, files: report.files.map((f) => ({ ...f })) },
      format,
      () => formatDrillHuman(report),
    ),
  );
  return report.wouldRestore ? ExitCode.Ok : ExitCode.Failure;
}

/** A keeper as nexus reports it in status and push answers. */
interface KeeperView {
  index?: unknown;
  url?: unknown;
  holdsShard?: unknown;
  lastError?: unknown;
}

function keeperViews(answer: Record<string, unknown>): KeeperView[] {
  return Array.isArray(answer.keepers) ? answer.keepers as KeeperView[] : [];
}

/**
 * Names the keepers that do not hold their share, and why.
 *
 * @param keepers the keepers as nexus reports them
 * @returns e.g. `keeper 2 (https://k2:8443): connect ECONNREFUSED`
 */
export function lackingKeepers(keepers: readonly KeeperView[]): string {
  return keepers.filter((k) => k.holdsShard !== true).map((k) =>
    `keeper ${k.index} (${k.url})${
      typeof k.lastError === "string" ? `: ${k.lastError}` : ""
    }`
  ).join("; ");
}

async function push(args: string[]): Promise<number> {
  const parsed = parseCommand({ name: "operator push", help: PUSH_HELP }, args);
  if (!parsed) return 0;
  const answer = await withNexus((nexus) => {
    nexus.requireRole("superuser", "push");
    return nexus.json("/v1/operator/push", {}, {
      badRequest: "SPIKE Nexus cannot push shards",
    });
  });
  const keepers = keeperViews(answer);
  const holding = keepers.filter((k) => k.holdsShard === true).length;
  if (holding < keepers.length) {
    throw new CliError(
      `Only ${holding} of ${keepers.length} keepers took their shard: ${
        lackingKeepers(keepers)
      }`,
    );
  }
  await writeStdout(
    `Shards pushed: ${holding} of ${keepers.length} keepers hold their shard\n`,
  );
  return ExitCode.Ok;
}

function lifecycle(
  name: "rotate" | "rekey" | "backup",
): (args: string[]) => Promise<number> {
  return async (args) =>
    (await import("./lifecycle.ts")).LIFECYCLE_COMMANDS[name](args);
}

/**
 * Runs `spike pilot operator …`.
 *
 * @param args the arguments after `operator`
 * @returns the exit code
 */
export function runOperator(args: string[]): Promise<number> {
  return dispatchSubcommand("operator", OPERATOR_HELP, {
    recover,
    restore,
    drill,
    push,
    // Loaded only when used: the backup reader brings node:crypto.
    rotate: lifecycle("rotate"),
    rekey: lifecycle("rekey"),
    backup: lifecycle("backup"),
  }, args);
}
