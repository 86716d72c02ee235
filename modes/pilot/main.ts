// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike pilot`: the operator CLI. Turns commands into calls to SPIKE
 * Nexus over SPIFFE mTLS. Data goes to stdout; every failure is one
 * sentence on stderr and a distinct exit code (see {@linkcode ExitCode}).
 * Each command group is loaded only when used, to keep start-up fast.
 *
 * @module
 */
import { ConfigError } from "../../lib/config/env.ts";
import { checkLogLevel, setDefaultLogLevel } from "../../lib/log.ts";
import { VERSION } from "../../lib/version.ts";
import {
  describePermissionError,
  permissionErrorOf,
  withoutPermissionAdvice,
} from "../../lib/permission_error.ts";
import { ValidationError } from "../../lib/wire/validate.ts";
import { CliError } from "./cli_error.ts";
import { EXIT_CODE_TABLE, ExitCode, type ExitCodeValue } from "./exit_codes.ts";

export { EXIT_CODE_TABLE, ExitCode } from "./exit_codes.ts";

/** The top-level help of `spike pilot`. */
export const PILOT_HELP = `SPIKE Pilot: the operator CLI of SPIKE Nexus.

Usage:
  spike pilot <command> [arguments]
  spike pilot <command> --help        (or: spike pilot help <command>)
  spike pilot --version

Commands:
  secret put|get|delete|undelete|list|metadata get   manage secrets
  policy create|apply|get|list|delete                manage access policies
  cipher encrypt|decrypt                             encrypt and decrypt with nexus's key
  operator recover|restore|drill|push                disaster recovery of the root key,
                                                     shards to keepers now
  operator rotate|rekey|backup                       key rotation, rekey, backup
  status                                             nexus state, shards and keepers

Environment:
  SPIKE_NEXUS_API_URL        nexus URL (default https://localhost:8553)
  SPIKE_SVID_DIR             folder with svid.pem, svid_key.pem and svid_bundle.pem;
                             when unset, the SPIFFE Workload API is used:
  SPIFFE_ENDPOINT_SOCKET     Workload API address, e.g. unix:///tmp/spire-agent/public/api.sock
  SPIKE_TRUST_ROOT_NEXUS     trust domains nexus's SPIFFE ID may be in (default
                             SPIKE_TRUST_ROOT, else this SVID's trust domain)
  SPIKE_FEDERATED_BUNDLES    with SPIKE_SVID_DIR: <trust domain>=<PEM file>,...
                             for each federated trust domain
  SPIKE_PILOT_RECOVERY_DIR   recovery folder (default ~/.spike/recover)
  SPIKE_SPIFFE_SOURCE_TIMEOUT  longest wait for the first SVID (default 30s)
  SPIKE_HTTP_CLIENT_TIMEOUT  time limit per request (default 60s)
  SPIKE_SYSTEM_LOG_LEVEL     DEBUG, INFO, WARN or ERROR (default ERROR)

Data goes to stdout; errors go to stderr as one sentence. Go-style flags
(-format=json, -v=2) are read as their double-dash forms.

Exit codes:
${
  EXIT_CODE_TABLE.map(([code, meaning]) => `  ${code}  ${meaning}`).join("\n")
}`;

type Runner = (args: string[]) => Promise<number>;

const COMMANDS: Readonly<Record<string, () => Promise<Runner>>> = {
  secret: async () => (await import("./secret.ts")).runSecret,
  policy: async () => (await import("./policy.ts")).runPolicy,
  cipher: async () => (await import("./cipher.ts")).runCipher,
  operator: async () => (await import("./operator.ts")).runOperator,
  status: async () => (await import("./status.ts")).runStatus,
};

/**
 * The sentence and exit code for an error that ended a command.
 *
 * @param error what was thrown
 * @returns the message for stderr (`undefined`: print nothing) and the code
 */
export function describeError(
  error: unknown,
): { message: string | undefined; exitCode: ExitCodeValue } {
  if (error instanceof CliError) {
    // A CliError may quote another error's message.
    return {
      message: withoutPermissionAdvice(error.message),
      exitCode: error.exitCode,
    };
  }
  if (error instanceof ValidationError || error instanceof ConfigError) {
    return { message: error.message, exitCode: ExitCode.Usage };
  }
  if (error instanceof Deno.errors.BrokenPipe) {
    // The reader of stdout went away (e.g. `| head`): nothing to tell it.
    return { message: undefined, exitCode: ExitCode.Failure };
  }
  const denied = permissionErrorOf(error);
  if (denied !== undefined) {
    return {
      message: describePermissionError(denied),
      exitCode: ExitCode.Failure,
    };
  }
  const message = error instanceof Error
    ? `${error.name}: ${error.message}`
    : String(error);
  return {
    message: `Unexpected error: ${
      withoutPermissionAdvice(message.split("\n")[0]!)
    }`,
    exitCode: ExitCode.Failure,
  };
}

/**
 * Runs `spike pilot` with the arguments after `pilot`.
 *
 * @param args e.g. `["secret", "get", "apps/db"]`
 * @returns the exit code (see {@linkcode ExitCode})
 */
export async function main(args: string[]): Promise<number> {
  // Errors are one sentence on stderr: operational lines (such as the
  // Workload API's retries) show only when SPIKE_SYSTEM_LOG_LEVEL asks.
  setDefaultLogLevel("ERROR");
  const [command, ...rest] = args;
  if (
    command === "--version" || command === "-version" || command === "version"
  ) {
    console.log(`spike ${VERSION}`);
    return ExitCode.Ok;
  }
  if (command === "help" && rest.length > 0) {
    // `spike pilot help secret put` as `spike pilot secret put --help`.
    return await main([...rest, "--help"]);
  }
  if (
    command === "--help" || command === "-h" || command === "-help" ||
    command === "help"
  ) {
    console.log(PILOT_HELP);
    return ExitCode.Ok;
  }
  try {
    checkLogLevel();
    if (command === undefined) {
      throw new CliError(
        'A command is required: secret, policy, cipher, operator or status (see "spike pilot --help")',
        ExitCode.Usage,
      );
    }
    const load = Object.hasOwn(COMMANDS, command)
      ? COMMANDS[command]
      : undefined;
    if (load === undefined) {
      throw new CliError(
        `Unknown command "${command}": use secret, policy, cipher, operator or status (see "spike pilot --help")`,
        ExitCode.Usage,
      );
    }
    return await (await load())(rest);
  } catch (error) {
    const { message, exitCode } = describeError(error);
    if (message !== undefined) console.error(message);
    return exitCode;
  }
}
