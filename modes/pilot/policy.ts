// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike pilot policy …`: create, apply (upsert), get, list and delete
 * access policies, over nexus's `/v1/acl/policy` routes.
 *
 * @module
 */
import {
  type Permission,
  PERMISSIONS,
  validatePathPattern,
  validatePermissions,
  validatePolicyName,
  validateSpiffeIdPattern,
  ValidationError,
} from "../../lib/wire/validate.ts";
import {
  booleanFlag,
  dispatchSubcommand,
  FORMAT_OPTION,
  type OptionSpec,
  parseCommand,
  type ParsedArgs,
  parseFormat,
  parsePermissionList,
  stringFlag,
} from "./args.ts";
import { CliError, lowerFirst, usageError } from "./cli_error.ts";
import { ExitCode } from "./exit_codes.ts";
import { listAllPages } from "./list_pages.ts";
import { type NexusSession, withNexus } from "./nexus.ts";
import { formatTime, render, writeStdout } from "./output.ts";
import { parsePolicyFile, PolicyFileError } from "./policy_file.ts";
import { readAllLimited } from "./input_file.ts";
import { confirm } from "./prompt.ts";

const POLICY = "/v1/acl/policy";

/** Help of `spike pilot policy`. */
export const POLICY_HELP = `Manage access policies in SPIKE Nexus.

A policy gives workloads whose SPIFFE ID matches a pattern permissions on
secret paths matching another pattern. Patterns are regular expressions
matched against the whole ID or path.

Usage:
  spike pilot policy create --name N --spiffeid-pattern P --path-pattern P --permissions L
  spike pilot policy apply (--file <policy.yaml|policy.json|-> | <the create flags>)
  spike pilot policy get <name> [-f human|json|yaml]
  spike pilot policy list [--spiffeid-pattern P | --path-pattern P] [-f human|json|yaml]
  spike pilot policy delete <name> [--yes]

Run "spike pilot policy <command> --help" for details.`;

const FIELD_FLAGS =
  `  --name N               policy name (letters, digits, -, _ and space)
  --spiffeid-pattern P   regular expression for SPIFFE IDs, starting with
                         spiffe:// or ^spiffe://, e.g. "^spiffe://example\\.org/web/.*$"
  --path-pattern P       regular expression for secret paths, e.g. "^apps/web/.*$"
  --permissions L        comma list of read, write, list, execute, super`;

const CREATE_HELP = `Create a policy; refuses a name that exists (exit 7).

Usage:
  spike pilot policy create --name N --spiffeid-pattern P --path-pattern P --permissions L

Nexus checks the name and refuses a taken one; creating needs write on
spike/system/acl (a superuser has it), nothing more.

Options:
${FIELD_FLAGS}
  -h, --help             show this help

Example: the workload spiffe://spike.ist/workload/app may read apps/app/...

  spike pilot policy create --name app-read \\
    --spiffeid-pattern '^spiffe://spike\\.ist/workload/app$' \\
    --path-pattern '^apps/app/.*$' --permissions read`;

const APPLY_HELP = `Create a policy or replace the one with the same name.

Usage:
  spike pilot policy apply --file <policy.yaml|policy.json|->
  spike pilot policy apply --name N --spiffeid-pattern P --path-pattern P --permissions L

The file holds name, spiffeidPattern, pathPattern and permissions, as YAML
(this one lets workloads under spiffe://spike.ist/web/ read apps/web/...):

  name: web-read
  spiffeidPattern: ^spiffe://spike\\.ist/web/.*$
  pathPattern: ^apps/web/.*$
  permissions:
    - read

or as JSON with the same fields. "policy get -f yaml" prints this shape.
Listing secrets needs list on spike/system/secret besides list on the paths.

Options:
  --file F               the policy file ("-": read it from stdin)
${FIELD_FLAGS}
  -h, --help             show this help`;

const GET_HELP = `Show a policy.

Usage:
  spike pilot policy get <name> [-f human|json|yaml]
  spike pilot policy get --name <name> [-f human|json|yaml]

Options:
  --name N          the policy name (instead of the argument)
  -f, --format F    human, json or yaml
  -h, --help        show this help`;

const LIST_HELP = `List policy names.

Usage:
  spike pilot policy list [--spiffeid-pattern P | --path-pattern P] [-f human|json|yaml]

Options:
  --spiffeid-pattern P   only policies whose SPIFFE ID pattern is exactly P
  --path-pattern P       only policies whose path pattern is exactly P
  -f, --format F         human, json or yaml
  -h, --help             show this help`;

const DELETE_HELP = `Delete a policy.

Usage:
  spike pilot policy delete <name> [--yes]

Asks for confirmation on a terminal. When stdin is not a terminal (scripts,
pipes) --yes is required.

Options:
  --name N      the policy name (instead of the argument)
  -y, --yes     delete without asking
  -h, --help    show this help`;

const FIELD_OPTIONS: Record<string, OptionSpec> = {
  name: { type: "string" },
  "spiffeid-pattern": { type: "string" },
  "path-pattern": { type: "string" },
  permissions: { type: "string" },
};

/** A policy as sent to nexus. */
export interface PolicyFields {
  /** Policy name. */
  name: string;
  /** SPIFFE ID regular expression. */
  spiffeidPattern: string;
  /** Secret path regular expression. */
  pathPattern: string;
  /** Granted permissions. */
  permissions: Permission[];
}

function check<T>(run: () => T, label: string): T {
  try {
    return run();
  } catch (e) {
    if (e instanceof ValidationError) {
      throw usageError(`Invalid ${label}: ${lowerFirst(e.message)}`);
    }
    throw e;
  }
}

/**
 * Validates a policy name argument.
 *
 * @param name the name
 * @param label how to call it in the message
 * @returns the name
 * @throws {CliError} (exit code 2) naming the broken rule
 */
export function checkPolicyName(name: string, label = "--name"): string {
  return check(() => validatePolicyName(name), label);
}

/**
 * Reads and validates the four policy flags; all are required.
 *
 * @param values parsed flags
 * @returns the policy
 * @throws {CliError} (exit code 2) naming missing flags or the broken rule
 */
export function policyFromFlags(values: ParsedArgs["values"]): PolicyFields {
  const missing = Object.keys(FIELD_OPTIONS).filter((f) =>
    stringFlag(values, f) === undefined
  );
  if (missing.length > 0) {
    throw usageError(
      `Missing ${
        missing.map((f) => `--${f}`).join(", ")
      } (all of --name, --spiffeid-pattern, --path-pattern and --permissions are required)`,
    );
  }
  return {
    name: checkPolicyName(stringFlag(values, "name")!),
    spiffeidPattern: check(
      () => validateSpiffeIdPattern(stringFlag(values, "spiffeid-pattern")),
      "--spiffeid-pattern",
    ),
    pathPattern: check(
      () => validatePathPattern(stringFlag(values, "path-pattern")),
      "--path-pattern",
    ),
    permissions: parsePermissionList(stringFlag(values, "permissions")!),
  };
}

/**
 * Reads and validates a policy file's content (YAML or JSON).
 *
 * @param text the file content
 * @param file the file name, for messages
 * @returns the policy
 * @throws {CliError} (exit code 2) for syntax errors, missing fields and
 *   broken rules
 */
export function policyFromFile(text: string, file: string): PolicyFields {
  let fields;
  try {
    fields = parsePolicyFile(text);
  } catch (e) {
    if (e instanceof PolicyFileError) {
      throw usageError(
        `Invalid policy file "${file}": ${lowerFirst(e.message)}`,
      );
    }
    throw e;
  }
  const label = (field: string) => `${field} in "${file}"`;
  const permissions = fields.permissions;
  return {
    name: check(() => validatePolicyName(fields.name), label("name")),
    spiffeidPattern: check(
      () => validateSpiffeIdPattern(fields.spiffeidPattern),
      label("spiffeidPattern"),
    ),
    pathPattern: check(
      () => validatePathPattern(fields.pathPattern),
      label("pathPattern"),
    ),
    permissions: typeof permissions === "string"
      ? parsePermissionList(permissions, label("permissions"))
      : check(() => {
        const unknown = Array.isArray(permissions)
          ? permissions.find((p) => !PERMISSIONS.includes(p))
          : undefined;
        if (unknown !== undefined) {
          throw new ValidationError(
            "permissions",
            `Unknown permission ${JSON.stringify(unknown)}: use ${
              PERMISSIONS.join(", ")
            }`,
          );
        }
        return validatePermissions(permissions);
      }, label("permissions")),
  };
}

async function policyNames(
  nexus: NexusSession,
  filter: Record<string, string> = {},
): Promise<string[]> {
  return await listAllPages(
    nexus,
    `${POLICY}?action=list`,
    filter,
    (answer) =>
      (Array.isArray(answer.policies) ? answer.policies : [])
        .map((p) => (p as Record<string, unknown> | null)?.name)
        .filter((n): n is string => typeof n === "string"),
  );
}

async function create(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "policy create",
    help: CREATE_HELP,
    options: FIELD_OPTIONS,
  }, args);
  if (!parsed) return 0;
  const policy = policyFromFlags(parsed.values);
  await withNexus((nexus) =>
    nexus.json(`${POLICY}?action=create`, policy, {
      conflict:
        `Policy "${policy.name}" already exists (use "spike pilot policy apply" to change it)`,
    })
  );
  await writeStdout(`Policy "${policy.name}" created\n`);
  return ExitCode.Ok;
}

/** The largest policy file read from stdin; a policy is a few hundred bytes. */
const MAX_POLICY_STDIN = 1024 * 1024;

async function readPolicyStdin(): Promise<string> {
  const bytes = await readAllLimited(
    Deno.stdin.readable,
    MAX_POLICY_STDIN,
    "The policy on stdin",
  );
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw usageError("The policy on stdin is not valid UTF-8 text");
  }
}

async function readPolicyFile(file: string): Promise<string> {
  if (file === "-") return await readPolicyStdin();
  try {
    return await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw usageError(`Policy file "${file}" does not exist`);
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw usageError(`Policy file "${file}" is a directory`);
    }
    if (e instanceof TypeError) {
      throw usageError(`Policy file "${file}" is not valid UTF-8 text`);
    }
    throw e;
  }
}

async function apply(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "policy apply",
    help: APPLY_HELP,
    options: { file: { type: "string" }, ...FIELD_OPTIONS },
  }, args);
  if (!parsed) return 0;
  const file = stringFlag(parsed.values, "file");
  let policy: PolicyFields;
  if (file !== undefined) {
    const given = Object.keys(FIELD_OPTIONS).filter((f) =>
      stringFlag(parsed.values, f) !== undefined
    );
    if (given.length > 0) {
      throw usageError(
        `Give either --file or the policy flags, not both (got --file and --${
          given[0]
        })`,
      );
    }
    policy = policyFromFile(
      await readPolicyFile(file),
      file === "-" ? "stdin" : file,
    );
  } else {
    policy = policyFromFlags(parsed.values);
  }
  await withNexus((nexus) => nexus.json(POLICY, policy));
  await writeStdout(`Policy "${policy.name}" applied\n`);
  return ExitCode.Ok;
}

function nameArgument(parsed: ParsedArgs, command: string): string {
  const flag = stringFlag(parsed.values, "name");
  const arg = parsed.positionals[0];
  if (flag !== undefined && arg !== undefined && flag !== arg) {
    throw usageError(
      `Give the policy name once, as an argument or with --name, not both`,
    );
  }
  const name = arg ?? flag;
  if (name === undefined) {
    throw usageError(`"spike pilot policy ${command}" needs a policy name`);
  }
  return checkPolicyName(name, "policy name");
}

/** A policy as nexus reports it, in the shape `policy apply` reads back. */
export interface PolicyView {
  /** Policy name. */
  name: string;
  /** SPIFFE ID regular expression. */
  spiffeidPattern: string;
  /** Secret path regular expression. */
  pathPattern: string;
  /** Granted permissions. */
  permissions: string[];
  /** Creation time (RFC 3339), if known. */
  createdAt: string | null;
  /** Last change (RFC 3339), if known. */
  updatedAt: string | null;
}

/**
 * Normalizes nexus's policy answer (which carries upstream's
 * `spiffiedPattern` spelling too).
 *
 * @param answer the `?action=get` answer
 * @returns the policy
 */
export function policyView(answer: Record<string, unknown>): PolicyView {
  const text = (v: unknown) => (typeof v === "string" ? v : "");
  const time = (v: unknown) => (typeof v === "string" && v !== "" ? v : null);
  return {
    name: text(answer.name),
    spiffeidPattern: text(answer.spiffeidPattern ?? answer.spiffiedPattern),
    pathPattern: text(answer.pathPattern),
    permissions: Array.isArray(answer.permissions)
      ? answer.permissions.filter((p): p is string => typeof p === "string")
      : [],
    createdAt: time(answer.createdAt),
    updatedAt: time(answer.updatedAt),
  };
}

/**
 * The human layout of a policy.
 *
 * @param policy the policy
 * @returns the text
 */
export function formatPolicyHuman(policy: PolicyView): string {
  return [
    `Name:              ${policy.name}`,
    `SPIFFE ID Pattern: ${policy.spiffeidPattern}`,
    `Path Pattern:      ${policy.pathPattern}`,
    `Permissions:       ${policy.permissions.join(", ")}`,
    `Created At:        ${formatTime(policy.createdAt)}`,
    `Updated At:        ${formatTime(policy.updatedAt)}`,
  ].join("\n") + "\n";
}

async function get(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "policy get",
    help: GET_HELP,
    options: { name: { type: "string" }, ...FORMAT_OPTION },
    maxPositionals: 1,
  }, args);
  if (!parsed) return 0;
  const name = nameArgument(parsed, "get");
  const format = parseFormat(stringFlag(parsed.values, "format"));
  const answer = await withNexus((nexus) =>
    nexus.json(`${POLICY}?action=get`, { id: name }, {
      subject: `Policy "${name}"`,
    })
  );
  const policy = policyView(answer);
  await writeStdout(
    render({ ...policy }, format, () => formatPolicyHuman(policy)),
  );
  return ExitCode.Ok;
}

async function list(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "policy list",
    help: LIST_HELP,
    options: {
      "spiffeid-pattern": { type: "string" },
      "path-pattern": { type: "string" },
      ...FORMAT_OPTION,
    },
  }, args);
  if (!parsed) return 0;
  const format = parseFormat(stringFlag(parsed.values, "format"));
  const spiffeidPattern = stringFlag(parsed.values, "spiffeid-pattern");
  const pathPattern = stringFlag(parsed.values, "path-pattern");
  if (spiffeidPattern !== undefined && pathPattern !== undefined) {
    throw usageError(
      "Give --spiffeid-pattern or --path-pattern, not both",
    );
  }
  const filter: Record<string, string> = {};
  if (spiffeidPattern !== undefined) filter.spiffeidPattern = spiffeidPattern;
  if (pathPattern !== undefined) filter.pathPattern = pathPattern;
  const names = await withNexus((nexus) => policyNames(nexus, filter));
  await writeStdout(
    render(
      names,
      format,
      () =>
        names.length === 0
          ? "No policies found."
          : names.map((n) => `${n}\n`).join(""),
    ),
  );
  return ExitCode.Ok;
}

async function remove(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "policy delete",
    help: DELETE_HELP,
    options: { name: { type: "string" }, yes: { type: "boolean", short: "y" } },
    maxPositionals: 1,
  }, args);
  if (!parsed) return 0;
  const name = nameArgument(parsed, "delete");
  if (!booleanFlag(parsed.values, "yes")) {
    if (!Deno.stdin.isTerminal()) {
      throw usageError(
        `Refusing to delete policy "${name}" without confirmation: stdin is not a terminal, so pass --yes`,
      );
    }
    if (!(await confirm(`Delete policy "${name}"?`))) {
      throw new CliError(`Cancelled: policy "${name}" was not deleted`);
    }
  }
  await withNexus((nexus) =>
    nexus.json(`${POLICY}?action=delete`, { id: name }, {
      subject: `Policy "${name}"`,
    })
  );
  await writeStdout(`Policy "${name}" deleted\n`);
  return ExitCode.Ok;
}

/**
 * Runs `spike pilot policy …`.
 *
 * @param args the arguments after `policy`
 * @returns the exit code
 */
export function runPolicy(args: string[]): Promise<number> {
  return dispatchSubcommand("policy", POLICY_HELP, {
    create,
    apply,
    get,
    list,
    delete: remove,
  }, args);
}
