// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike pilot secret delete|undelete`: upstream's soft delete on the wire
 * (deleting the current version makes the newest live one current), made
 * visible and reversible by pilot. Both commands read the secret's metadata
 * before and after the change, so `delete` says which versions it deleted,
 * which one is current now, and warns when an older value is live again;
 * `undelete` without `-v` restores the versions the last delete removed:
 * those sharing the newest deletion time (one delete stamps all its
 * versions with one time). With no live version left nexus shows no
 * metadata, so `undelete` then sends upstream's default and nexus restores
 * the newest deleted version; `delete` prints the exact `undelete` command
 * whenever that default would not bring back what it deleted.
 *
 * @module
 */
import { parseCommand, parseVersionList, stringFlags } from "./args.ts";
import { CliError } from "./cli_error.ts";
import { ExitCode } from "./exit_codes.ts";
import type { NexusSession } from "./nexus.ts";
import { withNexus } from "./nexus.ts";
import { writeStderr, writeStdout } from "./output.ts";

const SECRETS = "/v1/store/secrets";

/** Help of `spike pilot secret delete`. */
export const DELETE_HELP =
  `Soft-delete versions of a secret (undelete brings them back).

Usage:
  spike pilot secret delete <path> [-v 1,2,...]

Deleting the current version makes the newest live version current again,
as upstream SPIKE does: a read then returns an older value. delete says
which versions it deleted and which one is current now, and warns when an
older value is live again.

Options:
  -v, --versions L  comma list of versions, e.g. "1,2" or "1, 2"; may be
                    repeated; 0 means the current version (default)
  -h, --help        show this help`;

/** Help of `spike pilot secret undelete`. */
export const UNDELETE_HELP = `Restore soft-deleted versions of a secret.

Usage:
  spike pilot secret undelete <path> [-v 1,2,...]

Without -v, restores the versions the last delete removed, so delete then
undelete gets back exactly where it was (repeat to step further back). When
no version is live, nexus cannot show which versions those were: it restores
the newest deleted version, and undelete says which versions stay deleted.

Options:
  -v, --versions L  comma list of versions, e.g. "1,2"; may be repeated;
                    0 means the current version
  -h, --help        show this help`;

/** One version as the metadata route reports it. */
export interface VersionState {
  /** The version number. */
  version: number;
  /** When it was deleted (RFC 3339), or null when live. */
  deletedTime: string | null;
}

/** A secret's versions, from the metadata route. */
export interface SecretVersions {
  /** The current version: the newest live one, 0 when none. */
  current: number;
  /** Every stored version, ascending. */
  versions: VersionState[];
}

/**
 * What pilot can know of a secret's versions: the versions, or why not
 * (`unseen`: unknown path or no live version, both 404 on the metadata
 * route; `hidden`: this identity may not read the secret).
 */
export type VersionsView = SecretVersions | "unseen" | "hidden";

/**
 * Reads the versions out of a metadata answer.
 *
 * @param answer the `/v1/store/secrets/metadata?action=get` answer
 * @returns the versions, ascending, and the current version
 */
export function versionsOf(answer: Record<string, unknown>): SecretVersions {
  const meta = (answer.metadata ?? {}) as Record<string, unknown>;
  const raw = (answer.versions ?? {}) as Record<string, unknown>;
  const versions: VersionState[] = [];
  for (const [key, value] of Object.entries(raw)) {
    const v = (value ?? {}) as Record<string, unknown>;
    const version = typeof v.version === "number" ? v.version : Number(key);
    if (!Number.isInteger(version) || version < 1) continue;
    versions.push({
      version,
      deletedTime: typeof v.deletedTime === "string" && v.deletedTime !== ""
        ? v.deletedTime
        : null,
    });
  }
  versions.sort((a, b) => a.version - b.version);
  const current = typeof meta.currentVersion === "number"
    ? meta.currentVersion
    : 0;
  return { current, versions };
}

async function readVersions(
  nexus: NexusSession,
  path: string,
): Promise<VersionsView> {
  try {
    return versionsOf(
      await nexus.json(`${SECRETS}/metadata?action=get`, { path }),
    );
  } catch (e) {
    if (e instanceof CliError && e.exitCode === ExitCode.NotFound) {
      return "unseen";
    }
    if (e instanceof CliError && e.exitCode === ExitCode.Unauthorized) {
      return "hidden";
    }
    throw e;
  }
}

/**
 * The versions the last delete removed: the deleted versions sharing the
 * newest deletion time. One delete stamps all its versions with the same
 * time; a later delete (even of an already deleted version) stamps a later
 * one, so repeated undeletes step back through the deletes in order.
 *
 * @param secret the versions
 * @returns the versions, ascending; empty when none is deleted
 */
export function lastDeleted(secret: SecretVersions): number[] {
  let newest: number | undefined;
  let stamp = "";
  for (const v of secret.versions) {
    if (v.deletedTime === null) continue;
    const t = Date.parse(v.deletedTime);
    if (newest === undefined || t > newest) {
      newest = t;
      stamp = v.deletedTime;
    }
  }
  return secret.versions.filter((v) => v.deletedTime === stamp)
    .map((v) => v.version);
}

/**
 * "version 2", "versions 1 and 2", "versions 1, 2 and 3".
 *
 * @param versions version numbers, at least one
 * @returns the words
 */
export function versionWords(versions: readonly number[]): string {
  if (versions.length === 1) return `version ${versions[0]}`;
  return `versions ${versions.slice(0, -1).join(", ")} and ${versions.at(-1)}`;
}

function currentWords(after: VersionsView): string {
  if (after === "hidden") return "";
  if (after === "unseen" || after.current === 0) {
    return "; no version is live now";
  }
  return `; version ${after.current} is current now`;
}

/** What `delete` reports, derived from the versions before and after. */
export interface DeleteReport {
  /** Lines for stdout. */
  stdout: string;
  /** A warning for stderr, or "". */
  stderr: string;
  /** The exit code. */
  exitCode: number;
}

/**
 * The report of a delete that nexus accepted.
 *
 * @param path the secret path
 * @param asked the versions asked for (empty: the current one)
 * @param before the versions before the delete
 * @param after the versions after it
 * @returns what to print, and the exit code
 */
export function deleteReport(
  path: string,
  asked: readonly number[],
  before: VersionsView,
  after: VersionsView,
): DeleteReport {
  const secret = `secret "${path}"`;
  if (before === "hidden") {
    return {
      stdout: `Deleted ${
        asked.length === 0 ? "the current version" : versionWords(asked)
      } of ${secret}\n`,
      stderr: "",
      exitCode: ExitCode.Ok,
    };
  }
  if (before === "unseen") {
    // Nexus knows the path (else it answered 404), but nothing is live.
    return {
      stdout: asked.length === 0
        ? `Nothing to delete: ${secret} has no live version\n`
        : `No version of ${secret} is live; ${
          versionWords(asked)
        } stay deleted\n`,
      stderr: "",
      exitCode: ExitCode.Ok,
    };
  }
  const targets = [
    ...new Set(
      (asked.length === 0 ? [0] : asked).map((v) =>
        v === 0 ? before.current : v
      ),
    ),
  ].filter((v) => v !== 0).sort((a, b) => a - b);
  const state = new Map(before.versions.map((v) => [v.version, v]));
  const deleted = targets.filter((v) => state.get(v)?.deletedTime === null);
  const missing = targets.filter((v) => !state.has(v));
  if (deleted.length === 0) {
    if (missing.length > 0) {
      return {
        stdout: "",
        stderr: `${
          capitalize(versionWords(missing))
        } of ${secret} not found: nothing deleted\n`,
        exitCode: ExitCode.NotFound,
      };
    }
    return {
      stdout: targets.length === 0
        ? `Nothing to delete: ${secret} has no live version\n`
        : `Nothing to delete: ${versionWords(targets)} of ${secret} ${
          targets.length === 1 ? "is" : "are"
        } already deleted\n`,
      stderr: "",
      exitCode: ExitCode.Ok,
    };
  }
  const lines = [
    `Deleted ${versionWords(deleted)} of ${secret}${currentWords(after)}`,
  ];
  const warnings: string[] = [];
  if (missing.length > 0) {
    warnings.push(
      `${capitalize(versionWords(missing))} of ${secret} not found`,
    );
  }
  const nowCurrent = after === "hidden" || after === "unseen"
    ? 0
    : after.current;
  if (nowCurrent !== 0 && nowCurrent < before.current) {
    warnings.push(
      `Warning: ${secret} now reads version ${nowCurrent}, an older value; "spike pilot secret undelete ${path}" brings back ${
        versionWords(deleted)
      }`,
    );
  } else if (nowCurrent === 0) {
    // Nexus then restores the newest deleted version by default, which is
    // what this delete removed only when it removed just that version.
    const newest = Math.max(...before.versions.map((v) => v.version));
    const plain = deleted.length === 1 && deleted[0] === newest;
    lines.push(
      `Bring it back with: spike pilot secret undelete ${path}${
        plain ? "" : ` -v ${deleted.join(",")}`
      }`,
    );
  }
  return {
    stdout: lines.map((l) => `${l}\n`).join(""),
    stderr: warnings.map((w) => `${w}\n`).join(""),
    exitCode: ExitCode.Ok,
  };
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function versionsArgs(
  name: "delete" | "undelete",
  help: string,
  args: string[],
): { path: string; versions: number[] } | undefined {
  const parsed = parseCommand({
    name: `secret ${name}`,
    help,
    args: "<path>",
    options: { versions: { type: "string", short: "v", multiple: true } },
    minPositionals: 1,
    maxPositionals: 1,
  }, args);
  if (!parsed) return undefined;
  return {
    path: parsed.positionals[0]!,
    versions: parseVersionList(stringFlags(parsed.values, "versions")),
  };
}

/**
 * Runs `spike pilot secret delete`.
 *
 * @param args the arguments after `delete`
 * @param checkPath validates the path argument
 * @returns the exit code
 */
export async function deleteSecret(
  args: string[],
  checkPath: (path: string) => string,
): Promise<number> {
  const parsed = versionsArgs("delete", DELETE_HELP, args);
  if (!parsed) return ExitCode.Ok;
  const path = checkPath(parsed.path);
  const report = await withNexus(async (nexus) => {
    const before = await readVersions(nexus, path);
    await nexus.json(`${SECRETS}?action=delete`, {
      path,
      versions: parsed.versions,
    }, { subject: `Secret "${path}"`, notFound: `Secret "${path}" not found` });
    const after = before === "hidden"
      ? before
      : await readVersions(nexus, path);
    return deleteReport(path, parsed.versions, before, after);
  });
  await writeStdout(report.stdout);
  if (report.stderr !== "") await writeStderr(report.stderr);
  return report.exitCode;
}

/**
 * Runs `spike pilot secret undelete`.
 *
 * @param args the arguments after `undelete`
 * @param checkPath validates the path argument
 * @returns the exit code
 */
export async function undeleteSecret(
  args: string[],
  checkPath: (path: string) => string,
): Promise<number> {
  const parsed = versionsArgs("undelete", UNDELETE_HELP, args);
  if (!parsed) return ExitCode.Ok;
  const path = checkPath(parsed.path);
  const secret = `secret "${path}"`;
  const text = await withNexus(async (nexus) => {
    const before = await readVersions(nexus, path);
    let versions = parsed.versions;
    if (versions.length === 0 && typeof before === "object") {
      versions = lastDeleted(before);
      if (versions.length === 0) {
        throw new CliError(
          `Nothing to undelete: no version of ${secret} is deleted`,
          ExitCode.NotFound,
        );
      }
    }
    await nexus.json(`${SECRETS}?action=undelete`, { path, versions }, {
      subject: `Secret "${path}"`,
      notFound: `Secret "${path}" not found, or none of ${
        versions.length === 0 ? "its versions" : versionWords(versions)
      } is deleted`,
    });
    if (before === "hidden") {
      return `Restored ${
        versions.length === 0
          ? "the newest deleted version"
          : versionWords(versions)
      } of ${secret}\n`;
    }
    const after = await readVersions(nexus, path);
    if (typeof after !== "object") return `Restored ${secret}\n`;
    const wasDeleted = (v: number) =>
      typeof before !== "object" ||
      before.versions.find((s) => s.version === v)?.deletedTime !== null;
    const restored = after.versions.filter((v) =>
      v.deletedTime === null && wasDeleted(v.version) &&
      (versions.length === 0
        ? v.version === after.current
        : versions.includes(v.version))
    ).map((v) => v.version);
    let line = `Restored ${
      versionWords(restored.length > 0 ? restored : [after.current])
    } of ${secret}${currentWords(after)}\n`;
    const still = after.versions.filter((v) => v.deletedTime !== null)
      .map((v) => v.version);
    if (
      parsed.versions.length === 0 && before === "unseen" && still.length > 0
    ) {
      line += `No version was live, so nexus restored the newest deleted one; ${
        versionWords(still)
      } stay deleted (spike pilot secret undelete ${path} -v ${
        still.join(",")
      } restores them)\n`;
    }
    return line;
  });
  await writeStdout(text);
  return ExitCode.Ok;
}
