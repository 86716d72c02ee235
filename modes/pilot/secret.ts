// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike pilot secret …`: put, get, delete, undelete, list and metadata of
 * secrets, over nexus's `/v1/store/secrets` routes.
 *
 * @module
 */
import {
  MAX_NAME_LENGTH,
  validateSecretKey,
  validateSecretPath,
  ValidationError,
} from "../../lib/wire/validate.ts";
import {
  dispatchSubcommand,
  FORMAT_OPTION,
  parseCommand,
  parseFormat,
  parseVersion,
  stringFlag,
} from "./args.ts";
import { CliError, lowerFirst, usageError } from "./cli_error.ts";
import { ExitCode } from "./exit_codes.ts";
import { type CallContext, withNexus } from "./nexus.ts";
import { formatTime, render, writeStdout } from "./output.ts";

const SECRETS = "/v1/store/secrets";

/** Help of `spike pilot secret`. */
export const SECRET_HELP = `Manage secrets stored in SPIKE Nexus.

Usage:
  spike pilot secret put <path> <key>=- | <key>=@<file> | - | <key=value>...
  spike pilot secret get <path> [key] [-v N] [-f human|json|yaml]
  spike pilot secret delete <path> [-v 1,2,...]
  spike pilot secret undelete <path> [-v 1,2,...]
  spike pilot secret list [prefix] [-f human|json|yaml]
  spike pilot secret metadata get <path> [-v N] [-f human|json|yaml]

Run "spike pilot secret <command> --help" for details.`;

const PUT_HELP = `Store a new version of a secret.

Usage:
  spike pilot secret put <path> <key>=- [<key>=@<file>]... [--cas N]
  spike pilot secret put <path> - [--cas N]          (JSON on stdin)
  spike pilot secret put <path> <key>=<value>... [--cas N]  (visible to ps)

Arguments:
  <path>          secret path, e.g. apps/web/db (letters, digits, . _ - / and
                  ( ) ? + * | [ ] { } \\; not under spike/system)
  <key>=-         the value from stdin: typed at a hidden prompt on a
                  terminal; from a pipe, every byte (printf %s, not echo,
                  unless the value ends with a newline); one key at most
  <key>=@<file>   the value is the file's exact bytes, a final newline
                  included
  -               all keys and values as one JSON object on stdin,
                  e.g. {"username": "app", "password": "..."}
  @<file>         the same JSON object from a file
  <key>=<value>   the value as given (split at the first "="): other local
                  users can read it in the process list, and it stays in
                  shell history

Keys are letters, digits, ., -, _ and space (tls.crt, app.config), not "."
or ".."; values must be UTF-8 text. A value
that is "-" or starts with "@" is read as above: to store such a value as it
is, give it through stdin or a file.

Options:
  --cas N       compare-and-set: store only if the current version is N
                (0: only if the secret does not exist yet); else exit 7
  -h, --help    show this help

Examples:
  spike pilot secret put apps/db username=app password=-
  spike pilot secret put apps/tls cert=@tls.crt key=@tls.key
  spike pilot secret put apps/db - < db.json`;

const GET_HELP = `Print a secret's values, or one value.

Usage:
  spike pilot secret get <path> [key] [-v N] [-f human|json|yaml]

Options:
  -v, --version N   the version to read (default: current)
  -f, --format F    human (key: value lines; with [key], the bare value
                    and one newline), json or yaml
  -h, --help        show this help`;

const LIST_HELP = `List the paths of secrets, all or those under a prefix.

Usage:
  spike pilot secret list [prefix] [-f human|json|yaml]

Arguments:
  [prefix]          only paths that start with it, e.g. apps/ (a plain
                    string, not a pattern)

Lists every path this identity may list, reading nexus's pages one after
another.

Options:
  -f, --format F    human ("- path" lines), json or yaml
  -h, --help        show this help`;

const METADATA_HELP = `Show a secret's versions and metadata.

Usage:
  spike pilot secret metadata get <path> [-v N] [-f human|json|yaml]

Options:
  -v, --version N   the version that must exist (default: current)
  -f, --format F    human, json or yaml
  -h, --help        show this help`;

/**
 * Checks a secret path before any call.
 *
 * @param path the path argument
 * @returns the path
 * @throws {CliError} (exit code 2) naming the broken rule
 */
export function checkSecretPath(path: string): string {
  try {
    return validateSecretPath(path);
  } catch (e) {
    if (e instanceof ValidationError) {
      throw usageError(
        `Invalid secret path "${path}": ${lowerFirst(e.message)}`,
      );
    }
    throw e;
  }
}

/**
 * Checks the name of a secret's key.
 *
 * @param key the key
 * @throws {CliError} (exit code 2) naming the key and the rule
 */
export function checkSecretKey(key: string): void {
  try {
    validateSecretKey(key);
  } catch (e) {
    if (!(e instanceof ValidationError)) throw e;
    throw usageError(
      `Invalid key "${key}": keys are 1 to ${MAX_NAME_LENGTH} letters, digits, dots, dashes, underscores and spaces, and not . or ..`,
    );
  }
}

/**
 * Reads `key=value` arguments (split at the first `=`).
 *
 * @param pairs the arguments
 * @returns key -> value, in argument order
 * @throws {CliError} (exit code 2) for an argument without `=`, an invalid
 *   or repeated key; messages name keys and positions, never values
 */
export function parseKeyValuePairs(
  pairs: readonly string[],
): Record<string, string> {
  if (pairs.length === 0) {
    throw usageError("A secret needs at least one key=value pair");
  }
  const values: Record<string, string> = {};
  pairs.forEach((pair, i) => {
    const eq = pair.indexOf("=");
    if (eq < 0) {
      throw usageError(
        `Value argument ${i + 1} is not a key=value pair (no "=")`,
      );
    }
    const key = pair.slice(0, eq);
    if (key === "") {
      throw usageError(`Value argument ${i + 1} has an empty key`);
    }
    checkSecretKey(key);
    if (Object.hasOwn(values, key)) {
      throw usageError(`Key "${key}" is given twice`);
    }
    Object.defineProperty(values, key, {
      value: pair.slice(eq + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  });
  return values;
}

async function put(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "secret put",
    help: PUT_HELP,
    args: "<path> <key>=-|<key>=@<file>|-|<key=value>...",
    options: { cas: { type: "string" } },
    minPositionals: 2,
    maxPositionals: Infinity,
  }, args);
  if (!parsed) return 0;
  const [rawPath, ...pairs] = parsed.positionals;
  const path = checkSecretPath(rawPath!);
  const cas = parseVersion(stringFlag(parsed.values, "cas"), "--cas");
  // Loaded by the command that needs it: value input pulls in the prompt,
  // file and shard-input code, which `secret get` must not load.
  const { readPutValues } = await import("./secret_values.ts");
  const values = await readPutValues(pairs, {
    parsePairs: parseKeyValuePairs,
    checkKey: checkSecretKey,
  });
  const request: Record<string, unknown> = { path, values };
  if (cas !== undefined) request.cas = cas;
  const context: CallContext = { subject: `Secret "${path}"` };
  if (cas !== undefined) {
    context.conflict = cas === 0
      ? `Secret "${path}" already exists (--cas 0 stores only a new secret)`
      : `Secret "${path}" is not at version ${cas} (compare-and-set failed; nothing stored)`;
  }
  await withNexus((nexus) => nexus.json(SECRETS, request, context));
  await writeStdout("OK\n");
  return ExitCode.Ok;
}

function secretSubject(path: string, version: number | undefined): string {
  return version
    ? `Version ${version} of secret "${path}"`
    : `Secret "${path}"`;
}

function readContext(path: string, version: number | undefined): CallContext {
  return {
    subject: secretSubject(path, version),
    notFound: version
      ? `Version ${version} of secret "${path}" not found (or deleted)`
      : `Secret "${path}" not found (or its current version is deleted)`,
  };
}

async function get(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "secret get",
    help: GET_HELP,
    args: "<path> [key]",
    options: { version: { type: "string", short: "v" }, ...FORMAT_OPTION },
    minPositionals: 1,
    maxPositionals: 2,
  }, args);
  if (!parsed) return 0;
  const [rawPath, key] = parsed.positionals;
  const path = checkSecretPath(rawPath!);
  const version = parseVersion(stringFlag(parsed.values, "version"));
  const format = parseFormat(stringFlag(parsed.values, "format"));
  const request: Record<string, unknown> = { path };
  if (version !== undefined) request.version = version;
  const answer = await withNexus((nexus) =>
    nexus.json(`${SECRETS}?action=get`, request, readContext(path, version))
  );
  const data = toStringMap(answer.data);
  if (key !== undefined) {
    if (!Object.hasOwn(data, key)) {
      throw new CliError(
        `${secretSubject(path, version)} has no key "${key}"`,
        ExitCode.NotFound,
      );
    }
    const value = data[key]!;
    // Exactly one newline after the bare value, so "v", "v\n" and ""
    // stay distinct (render adds one only when the text lacks it).
    await writeStdout(
      format === "human" ? `${value}\n` : render(value, format, () => value),
    );
    return ExitCode.Ok;
  }
  await writeStdout(render(data, format, () => formatSecretHuman(data)));
  return ExitCode.Ok;
}

function toStringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return out;
  }
  for (const [k, v] of Object.entries(value)) {
    Object.defineProperty(out, k, {
      value: typeof v === "string" ? v : JSON.stringify(v),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/**
 * The human layout of a secret: `key: value` lines.
 *
 * @param data the secret's values
 * @returns the text (empty for a secret without values)
 */
export function formatSecretHuman(
  data: Readonly<Record<string, string>>,
): string {
  return Object.entries(data).map(([k, v]) => `${k}: ${v}\n`).join("");
}

async function list(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "secret list",
    help: LIST_HELP,
    args: "[prefix]",
    options: FORMAT_OPTION,
    maxPositionals: 1,
  }, args);
  if (!parsed) return 0;
  const prefix = parsed.positionals[0] ?? "";
  const [{ validateListPage }, { listAllPages, stringsOf }] = await Promise
    .all([import("../../lib/wire/list_page.ts"), import("./list_pages.ts")]);
  try {
    validateListPage({ prefix });
  } catch (e) {
    if (e instanceof ValidationError) {
      throw usageError(`Invalid prefix: ${lowerFirst(e.message)}`);
    }
    throw e;
  }
  const format = parseFormat(stringFlag(parsed.values, "format"));
  const keys = (await withNexus((nexus) =>
    listAllPages(
      nexus,
      `${SECRETS}?action=list`,
      { prefix },
      (answer) => stringsOf(answer.keys),
    )
  )).filter((k) => k.startsWith(prefix));
  await writeStdout(
    render(
      keys,
      format,
      () =>
        keys.length === 0
          ? prefix === ""
            ? "No secrets found."
            : `No secrets found under "${prefix}".`
          : keys.map((k) => `- ${k}\n`).join(""),
    ),
  );
  return ExitCode.Ok;
}

const RULE = "-".repeat(50);

/**
 * The human layout of secret metadata (upstream's layout).
 *
 * @param answer the nexus answer: `{versions, metadata}`
 * @returns the text
 */
export function formatMetadataHuman(answer: Record<string, unknown>): string {
  const meta = (answer.metadata ?? {}) as Record<string, unknown>;
  const versions = (answer.versions ?? {}) as Record<
    string,
    Record<string, unknown>
  >;
  const lines = [
    "Metadata:",
    RULE,
    `Current Version : ${meta.currentVersion ?? "-"}`,
    `Oldest Version  : ${meta.oldestVersion ?? "-"}`,
    `Created Time    : ${formatTime(meta.createdTime)}`,
    `Last Updated    : ${formatTime(meta.updatedTime)}`,
    `Max Versions    : ${meta.maxVersions ?? "-"}`,
    RULE,
    "",
    "Secret Versions:",
    RULE,
  ];
  const numbers = Object.keys(versions).sort((a, b) => Number(a) - Number(b));
  for (const n of numbers) {
    const v = versions[n] ?? {};
    lines.push(`Version ${v.version ?? n}:`);
    lines.push(`  Created: ${formatTime(v.createdTime)}`);
    if (v.deletedTime !== null && v.deletedTime !== undefined) {
      lines.push(`  Deleted: ${formatTime(v.deletedTime)}`);
    }
    lines.push(RULE);
  }
  return `${lines.join("\n")}\n`;
}

async function metadataGet(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "secret metadata get",
    help: METADATA_HELP,
    args: "<path>",
    options: { version: { type: "string", short: "v" }, ...FORMAT_OPTION },
    minPositionals: 1,
    maxPositionals: 1,
  }, args);
  if (!parsed) return 0;
  const path = checkSecretPath(parsed.positionals[0]!);
  const version = parseVersion(stringFlag(parsed.values, "version"));
  const format = parseFormat(stringFlag(parsed.values, "format"));
  const request: Record<string, unknown> = { path };
  if (version !== undefined) request.version = version;
  const answer = await withNexus((nexus) =>
    nexus.json(
      `${SECRETS}/metadata?action=get`,
      request,
      readContext(path, version),
    )
  );
  const data = { metadata: answer.metadata, versions: answer.versions ?? {} };
  await writeStdout(
    render(data, format, () => formatMetadataHuman(answer)),
  );
  return ExitCode.Ok;
}

const METADATA_GROUP_HELP = `Read secret metadata.

Usage:
  spike pilot secret metadata get <path> [-v N] [-f human|json|yaml]`;

/**
 * Runs `spike pilot secret …`.
 *
 * @param args the arguments after `secret`
 * @returns the exit code
 */
export function runSecret(args: string[]): Promise<number> {
  return dispatchSubcommand("secret", SECRET_HELP, {
    put,
    get,
    delete: async (rest) =>
      (await import("./secret_versions.ts")).deleteSecret(
        rest,
        checkSecretPath,
      ),
    undelete: async (rest) =>
      (await import("./secret_versions.ts")).undeleteSecret(
        rest,
        checkSecretPath,
      ),
    list,
    metadata: (rest) =>
      dispatchSubcommand("secret metadata", METADATA_GROUP_HELP, {
        get: metadataGet,
      }, rest),
  }, args);
}
