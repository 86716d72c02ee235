// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike pilot operator rotate|rekey|backup`: the key and data lifecycle.
 * All three need the superuser role and expose no key material: a rekey
 * tells the operator to export the new recovery shards with the recover
 * role, and a backup is as encrypted as the store.
 *
 * @module
 */
import {
  type BackupEnd,
  BackupFormatError,
  type BackupHeader,
  BackupReader,
} from "../../lib/backup/format.ts";
import { booleanFlag, parseCommand, stringFlag } from "./args.ts";
import { CliError, lowerFirst, usageError } from "./cli_error.ts";
import { ExitCode } from "./exit_codes.ts";
import { withNexus } from "./nexus.ts";
import { writeStdout } from "./output.ts";

const ROTATE_HELP =
  `Start a new data-key term: new records are sealed with a new key.

Usage:
  spike pilot operator rotate [--reencrypt]

Older terms stay, to open the records that name them; nothing is
re-encrypted unless asked. Nexus also rotates by itself before a key has
made 90 % of 2^32 encryptions, and at SPIKE_NEXUS_KEY_ROTATION_PERIOD.
Needs an SVID of spike/pilot/role/superuser.

Options:
  --reencrypt   also seal every record of an older term again, in the
                background (progress in "spike pilot status"), then drop
                the older keys
  -h, --help    show this help`;

const REKEY_HELP =
  `Replace SPIKE Nexus's root key, and with it the split into keeper shards.

Usage:
  spike pilot operator rekey [--shares N] [--threshold T]

Makes a new root key, wraps the keyring with it (no data is re-encrypted),
and gives the keepers their new shards in two phases, so a crash at any
moment leaves the store with a key its keepers can rebuild. The new split
goes to the first N keepers of SPIKE_NEXUS_KEEPER_PEERS: to add keepers,
list them there and restart nexus first. Recovery shards exported before
no longer restore the store: export new ones with "spike pilot operator
recover" afterwards. Needs an SVID of spike/pilot/role/superuser.

Options:
  --shares N       shares of the new split (default: every configured keeper)
  --threshold T    shares needed to rebuild the key
                   (default: SPIKE_NEXUS_SHAMIR_THRESHOLD of nexus)
  -h, --help       show this help`;

const BACKUP_HELP = `Save a backup of SPIKE Nexus's store to a file.

Usage:
  spike pilot operator backup -o F

Nexus streams a consistent snapshot while writes go on. The file is as
encrypted as the store (sealed records and keyring; paths and policy names
in plain text, as in the store) and checked end to end; it opens only with
the root key it was made under: keep it with that key's recovery shards.
F is written with mode 0600 under F.partial and renamed when whole;
"-o -" writes to stdout. Restore it with "spike nexus restore-backup F".
Needs an SVID of spike/pilot/role/superuser.

Options:
  -o, --out F      where to write the backup ("-" for stdout)
  -h, --help       show this help`;

function count(n: unknown): string {
  return typeof n === "number" ? n.toLocaleString("en-US") : "?";
}

async function rotate(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "operator rotate",
    help: ROTATE_HELP,
    options: { reencrypt: { type: "boolean" } },
  }, args);
  if (!parsed) return 0;
  const reencrypt = booleanFlag(parsed.values, "reencrypt");
  const answer = await withNexus((nexus) => {
    nexus.requireRole("superuser", "rotate");
    return nexus.json("/v1/operator/rotate", { reencrypt });
  });
  const lines = [
    `Data keys rotated: new records are sealed with term ${answer.term} (term ${answer.previous} before).`,
  ];
  const progress = answer.reencrypt as Record<string, unknown> | null;
  lines.push(
    progress
      ? `Re-encrypting records of terms below ${progress.below} in the background: ${
        count(progress.done)
      } of ${
        count(progress.total)
      } paths so far; "spike pilot status" shows the progress.`
      : "Older terms stay, to open the records that name them.",
  );
  await writeStdout(lines.join("\n") + "\n");
  return ExitCode.Ok;
}

function optionalInt(
  value: string | undefined,
  flag: string,
): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) > 255) {
    throw usageError(`Option --${flag} must be a whole number from 1 to 255`);
  }
  return Number(value);
}

async function rekey(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "operator rekey",
    help: REKEY_HELP,
    options: {
      shares: { type: "string" },
      threshold: { type: "string" },
    },
  }, args);
  if (!parsed) return 0;
  const shares = optionalInt(stringFlag(parsed.values, "shares"), "shares");
  const threshold = optionalInt(
    stringFlag(parsed.values, "threshold"),
    "threshold",
  );
  const answer = await withNexus((nexus) => {
    nexus.requireRole("superuser", "rekey");
    return nexus.json("/v1/operator/rekey", {
      ...(shares === undefined ? {} : { shares }),
      ...(threshold === undefined ? {} : { threshold }),
    }, {
      badRequest: "SPIKE Nexus refused the rekey",
      conflict:
        "SPIKE Nexus did not replace its root key (a keeper did not take its new shard in time, another rekey was running, or, with replicas, this replica does not lead the push loop): the store keeps its root key and the recovery shards stay valid; nexus's log says which",
    });
  });
  const previous = (answer.previous ?? {}) as Record<string, unknown>;
  const lines = [
    `Root key replaced: key ${answer.keyId}, ${answer.threshold} of ${answer.shares} shards restore it (was ${previous.threshold} of ${previous.shares}).`,
  ];
  if (
    typeof answer.promoted === "number" && answer.promoted !== answer.shares
  ) {
    lines.push(
      `${answer.promoted} of ${answer.shares} keepers took their new shard at once; nexus keeps pushing it to the others (spike pilot status).`,
    );
  }
  lines.push(
    "",
    "Recovery shards exported before now NO LONGER restore this store (keep them only",
    "with backups made before now: a backup opens with the key it was made under).",
    "Export the new ones now: spike pilot operator recover (SVID of spike/pilot/role/recover).",
  );
  await writeStdout(lines.join("\n") + "\n");
  return ExitCode.Ok;
}

/** What a saved backup holds, as its header and end say. */
export interface BackupReport {
  /** The header. */
  readonly header: BackupHeader;
  /** The end frame: counts, digest. */
  readonly end: BackupEnd;
}

/**
 * Checks a backup as it streams by (format, order, counts, checksum).
 */
export class BackupCheck {
  readonly #reader = new BackupReader();
  #header: BackupHeader | undefined;
  #end: BackupEnd | undefined;

  /**
   * Takes the next bytes.
   *
   * @param chunk the bytes
   * @throws {BackupFormatError} when they are not a valid backup
   */
  push(chunk: Uint8Array): void {
    for (const frame of this.#reader.push(chunk)) {
      if (frame.type === "header") this.#header = frame.header;
      if (frame.type === "end") this.#end = frame.end;
    }
  }

  /**
   * Declares the backup complete.
   *
   * @returns what it holds
   * @throws {BackupFormatError} when it ended early
   */
  finish(): BackupReport {
    this.#reader.finish();
    return { header: this.#header!, end: this.#end! };
  }
}

async function writeAll(file: Deno.FsFile, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    offset += await file.write(chunk.subarray(offset));
  }
}

function describe(report: BackupReport, where: string): string {
  const { header, end } = report;
  return [
    `Backup of store ${header.storeId} written to ${where}: ${
      count(end.secrets)
    } secrets (${count(end.versions)} older versions), ${
      count(end.policies)
    } policies, checksum verified.`,
    `It opens only with root key ${header.key.id} (${header.key.threshold} of ${header.key.shares} shards): keep it with that key's recovery shards.`,
    'Restore it with "spike nexus restore-backup FILE" into an empty data folder.',
  ].join("\n") + "\n";
}

async function backup(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "operator backup",
    help: BACKUP_HELP,
    options: { out: { type: "string", short: "o" } },
  }, args);
  if (!parsed) return 0;
  const out = stringFlag(parsed.values, "out");
  if (out === undefined || out === "") {
    throw usageError(
      'Option --out is required: the file to write, or "-" for stdout',
    );
  }
  const check = new BackupCheck();
  const toStdout = out === "-";
  const partial = `${out}.partial`;
  let file: Deno.FsFile | undefined;
  try {
    await withNexus(async (nexus) => {
      nexus.requireRole("superuser", "backup");
      if (!toStdout) {
        file = await openOutput(partial);
      }
      const target = file;
      await nexus.stream("/v1/operator/backup", "{}", async (chunk) => {
        check.push(chunk);
        if (target) await writeAll(target, chunk);
        else await writeStdout(chunk);
      });
    });
    const report = check.finish();
    if (file) {
      await file.sync();
      file.close();
      file = undefined;
      await Deno.rename(partial, out);
      await writeStdout(describe(report, out));
    } else {
      console.error(describe(report, "stdout").trimEnd());
    }
    return ExitCode.Ok;
  } catch (e) {
    if (file) {
      file.close();
      await Deno.remove(partial).catch(() => {});
    }
    if (e instanceof BackupFormatError) {
      throw new CliError(
        `The backup SPIKE Nexus sent is not valid: ${lowerFirst(e.message)}${
          toStdout ? "" : "; nothing was written"
        }`,
      );
    }
    if (e instanceof CliError && !toStdout) {
      throw new CliError(`${e.message}; nothing was written`, e.exitCode);
    }
    throw e;
  }
}

async function openOutput(path: string): Promise<Deno.FsFile> {
  try {
    const file = await Deno.open(path, {
      write: true,
      create: true,
      truncate: true,
      mode: 0o600,
    });
    await Deno.chmod(path, 0o600);
    return file;
  } catch (e) {
    if (
      e instanceof Deno.errors.NotFound || e instanceof Deno.errors.IsADirectory
    ) {
      throw usageError(`Cannot write the backup to ${path}: no such folder`);
    }
    throw e;
  }
}

/** The lifecycle subcommands of `spike pilot operator`. */
export const LIFECYCLE_COMMANDS = { rotate, rekey, backup };
