// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Command-line parsing for pilot commands: strict `node:util` parseArgs per
 * command, `--help` on every command, and the value parsers shared by
 * several commands (output format, versions, permissions). Every problem
 * becomes a usage error (exit code 2) naming the flag or argument.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  MAX_VERSION,
  type Permission,
  validatePermissions,
  ValidationError,
} from "../../lib/wire/validate.ts";
import { normalizeGoStyleFlags } from "../../lib/go_style_flags.ts";
import { usageError } from "./cli_error.ts";

/** A parseArgs option as pilot uses it. */
export interface OptionSpec {
  /** `string` takes a value; `boolean` is a switch. */
  type: "string" | "boolean";
  /** One-letter alias. */
  short?: string;
  /** The flag may be repeated; values are collected. */
  multiple?: boolean;
}

/** What a command accepts. */
export interface CommandSpec {
  /** The command as typed after `spike pilot`, e.g. `secret get`. */
  name: string;
  /** The help text, printed by `--help`. */
  help: string;
  /** The flags, by long name (without `--`). `help` is added. */
  options?: Record<string, OptionSpec>;
  /** The positional arguments as help writes them, e.g. `<path> [key]`. */
  args?: string;
  /** Fewest positional arguments. */
  minPositionals?: number;
  /** Most positional arguments (default: none). */
  maxPositionals?: number;
}

/** Flag values by long name. */
export type FlagValues = Record<
  string,
  string | boolean | (string | boolean)[] | undefined
>;

/** Parsed arguments of one command. */
export interface ParsedArgs {
  /** Flag values by long name. */
  values: FlagValues;
  /** Positional arguments, in order. */
  positionals: string[];
}

function describeParseError(error: unknown, spec: CommandSpec): string {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  const tokens = (/'([^']+)'/.exec(message)?.[1] ?? "").split(/[ ,]+/);
  const given = tokens.find((t) => t.startsWith("-")) ?? "";
  const long = tokens.find((t) => t.startsWith("--")) ??
    longName(spec, given.slice(1)) ?? given;
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `Unknown option ${given} for "spike pilot ${spec.name}" (see --help)`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      if (message.includes("argument missing")) {
        return `Option ${long} needs a value`;
      }
      if (message.includes("does not take an argument")) {
        return `Option ${long} does not take a value`;
      }
      return `Option ${given} got a value starting with "-": write ${long}=<value> to pass it`;
    default:
      return `Invalid arguments for "spike pilot ${spec.name}" (see --help)`;
  }
}

function longName(spec: CommandSpec, short: string): string | undefined {
  if (short === "h") return "--help";
  const entry = Object.entries(spec.options ?? {}).find(([, o]) =>
    o.short === short
  );
  return entry ? `--${entry[0]}` : undefined;
}

/**
 * Refuses a single-dash word that is neither a long option (rewritten
 * before) nor short flags (`-fjson`): parseArgs would name only its first
 * letter. Only the part before any `=` is quoted, never a value.
 */
function refuseSingleDashWords(spec: CommandSpec, args: readonly string[]) {
  const shorts = new Set(["h"]);
  for (const o of Object.values(spec.options ?? {})) {
    if (o.short) shorts.add(o.short);
  }
  for (const arg of args) {
    if (arg === "--") return;
    if (
      arg.startsWith("-") && !arg.startsWith("--") && arg.length > 2 &&
      !shorts.has(arg[1]!) && !/^-\d/.test(arg)
    ) {
      throw usageError(
        `Unknown option ${
          arg.split("=")[0]
        } for "spike pilot ${spec.name}": long options take two dashes (see --help)`,
      );
    }
  }
}

// parseArgs keeps only the last value of a repeated flag; a typo such as
// `--name d1 --name d2` must not silently act on d2.
function refuseRepeats(
  spec: CommandSpec,
  tokens: readonly { kind: string; name?: string }[],
): void {
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== "option" || token.name === undefined) continue;
    if (token.name === "help" || spec.options?.[token.name]?.multiple) {
      continue;
    }
    if (seen.has(token.name)) {
      throw usageError(
        `Option --${token.name} is given more than once: give it once`,
      );
    }
    seen.add(token.name);
  }
}

/**
 * Parses one command's arguments strictly.
 *
 * @param spec what the command accepts
 * @param args the arguments after the command words
 * @returns the parsed arguments, or `undefined` when `--help` was given and
 *   the help was printed on stdout
 * @throws {CliError} (exit code 2) for unknown flags, missing values, a
 *   flag given twice that is not `multiple`, or a wrong number of
 *   positional arguments
 */
export function parseCommand(
  spec: CommandSpec,
  args: string[],
): ParsedArgs | undefined {
  const normalized = normalizeGoStyleFlags(args, spec.options ?? {});
  refuseSingleDashWords(spec, normalized);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: normalized,
      options: { ...spec.options, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: true,
      tokens: true,
    });
  } catch (e) {
    throw usageError(describeParseError(e, spec));
  }
  if (parsed.values.help === true) {
    console.log(spec.help);
    return undefined;
  }
  refuseRepeats(spec, parsed.tokens ?? []);
  const { positionals } = parsed;
  const min = spec.minPositionals ?? 0;
  const max = spec.maxPositionals ?? 0;
  if (positionals.length < min) {
    throw usageError(
      `"spike pilot ${spec.name}" needs ${
        spec.args ?? (min === 1 ? "an argument" : `${min} arguments`)
      } (see --help)`,
    );
  }
  if (positionals.length > max) {
    throw usageError(
      max === 0
        ? `"spike pilot ${spec.name}" takes no arguments, got "${
          positionals[0]
        }" (see --help)`
        : `"spike pilot ${spec.name}" takes at most ${max} argument${
          max === 1 ? "" : "s"
        } (see --help)`,
    );
  }
  return { values: parsed.values as FlagValues, positionals };
}

/**
 * A string flag's value.
 *
 * @param values the parsed flags
 * @param name the long flag name
 * @returns the value, or `undefined` when absent
 */
export function stringFlag(
  values: FlagValues,
  name: string,
): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

/**
 * A repeatable string flag's values.
 *
 * @param values the parsed flags
 * @param name the long flag name
 * @returns every value given, in order
 */
export function stringFlags(values: FlagValues, name: string): string[] {
  const value = values[name];
  if (Array.isArray(value)) {
    return value.filter((v): v is string => typeof v === "string");
  }
  return typeof value === "string" ? [value] : [];
}

/**
 * A boolean flag's value.
 *
 * @param values the parsed flags
 * @param name the long flag name
 * @returns true when the flag was given
 */
export function booleanFlag(values: FlagValues, name: string): boolean {
  return values[name] === true;
}

/** An output format. */
export type Format = "human" | "json" | "yaml";

const FORMAT_ALIASES: Readonly<Record<string, Format>> = {
  human: "human",
  h: "human",
  plain: "human",
  p: "human",
  json: "json",
  j: "json",
  yaml: "yaml",
  y: "yaml",
};

/** The `-f/--format` flag every listing command takes. */
export const FORMAT_OPTION: Record<string, OptionSpec> = {
  format: { type: "string", short: "f" },
};

/**
 * Reads the output format (upstream's names and one-letter aliases).
 *
 * @param value the `--format` value, or `undefined` for the default
 * @returns the format; `human` by default
 * @throws {CliError} (exit code 2) for an unknown format
 */
export function parseFormat(value: string | undefined): Format {
  if (value === undefined) return "human";
  const format = FORMAT_ALIASES[value.trim().toLowerCase()];
  if (format === undefined) {
    throw usageError(
      `Unknown format "${value}": use human (h, plain, p), json (j) or yaml (y)`,
    );
  }
  return format;
}

/**
 * Reads one version number.
 *
 * @param value the flag value, or `undefined`
 * @param flag the flag, for the message
 * @returns the version, or `undefined` when absent
 * @throws {CliError} (exit code 2) unless a whole number 0..2^31-1
 */
export function parseVersion(
  value: string | undefined,
  flag = "--version",
): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (!/^\d+$/.test(text) || Number(text) > MAX_VERSION) {
    throw usageError(
      `${flag} must be a whole number from 0 to ${MAX_VERSION}, got "${value}"`,
    );
  }
  return Number(text);
}

/**
 * Reads version lists such as `1,2`, `1, 2` or repeated flags; blanks
 * around entries are trimmed.
 *
 * @param inputs every value of the versions flag
 * @param flag the flag, for the message
 * @returns the distinct versions in order; empty when no flag was given
 *   (nexus then acts on the current version)
 * @throws {CliError} (exit code 2) for an empty entry or a non-number
 */
export function parseVersionList(
  inputs: readonly string[],
  flag = "--versions",
): number[] {
  const versions: number[] = [];
  for (const input of inputs) {
    for (const entry of input.split(",")) {
      if (entry.trim() === "") {
        throw usageError(
          `${flag} has an empty entry: write versions like "1,2,3"`,
        );
      }
      const version = parseVersion(entry, flag)!;
      if (!versions.includes(version)) versions.push(version);
    }
  }
  return versions;
}

/**
 * Reads a comma list of permissions, such as `read, write`.
 *
 * @param value the flag value
 * @param flag the flag, for the message
 * @returns the distinct permissions in canonical order
 * @throws {CliError} (exit code 2) for an empty list or an unknown permission
 */
export function parsePermissionList(
  value: string,
  flag = "--permissions",
): Permission[] {
  const entries = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = entries.find((p) =>
    !["read", "write", "list", "execute", "super"].includes(p)
  );
  if (unknown !== undefined) {
    throw usageError(
      `${flag} has an unknown permission "${unknown}": use read, write, list, execute or super`,
    );
  }
  try {
    return validatePermissions(entries, flag);
  } catch (e) {
    if (e instanceof ValidationError) throw usageError(`${flag}: ${e.message}`);
    throw e;
  }
}

/** A subcommand: takes the arguments after its name, returns the exit code. */
export type Subcommand = (args: string[]) => Promise<number>;

/**
 * Runs the subcommand named by the first argument of a command group
 * (`secret`, `policy`, ...).
 *
 * @param group the group, e.g. `secret`
 * @param help the group's help text
 * @param subcommands name -> handler
 * @param args the arguments after the group name
 * @returns the exit code
 * @throws {CliError} (exit code 2) for a missing or unknown subcommand
 */
export async function dispatchSubcommand(
  group: string,
  help: string,
  subcommands: Readonly<Record<string, Subcommand>>,
  args: string[],
): Promise<number> {
  const [name, ...rest] = args;
  if (name === "help" && rest.length > 0) {
    // `spike pilot secret help put` as `spike pilot secret put --help`.
    return await dispatchSubcommand(group, help, subcommands, [
      ...rest,
      "--help",
    ]);
  }
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(help);
    return 0;
  }
  if (name === undefined) {
    throw usageError(
      `"spike pilot ${group}" needs a subcommand: ${
        Object.keys(subcommands).join(", ")
      } (see --help)`,
    );
  }
  const run = Object.hasOwn(subcommands, name) ? subcommands[name] : undefined;
  if (run === undefined) {
    throw usageError(
      `Unknown command "spike pilot ${group} ${name}": use ${
        Object.keys(subcommands).join(", ")
      } (see --help)`,
    );
  }
  return await run(rest);
}
