// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * SPIKE: a SPIFFE-native secrets manager. One program, three modes:
 * `spike nexus`, `spike keeper`, `spike pilot …`.
 *
 * @module
 */
import {
  type Mode,
  narrowPermissions,
  permissionStates,
} from "./lib/permissions.ts";
import { createLogger } from "./lib/log.ts";
import { VERSION } from "./lib/version.ts";
import {
  describePermissionError,
  permissionErrorOf,
  withoutPermissionAdvice,
} from "./lib/permission_error.ts";

export { VERSION } from "./lib/version.ts";

/** Pilot's commands, typed without `pilot` by habit from upstream's `spike` CLI. */
const PILOT_COMMANDS = ["secret", "policy", "cipher", "operator", "status"];

const USAGE = `SPIKE ${VERSION}: secure your secrets with SPIFFE

Usage:
  spike nexus            run the secrets store (REST over SPIFFE mTLS)
  spike keeper           run a keeper (holds one shard of the root key)
  spike pilot <command>  operator CLI (run "spike pilot --help")
  spike --version        print the version
  spike --help           print this help
`;

function narrow(mode: Mode): void {
  narrowPermissions(mode);
  createLogger(mode).debug("Permissions after narrowing", permissionStates());
}

async function run(args: string[]): Promise<number> {
  const [mode, ...rest] = args;
  switch (mode) {
    case "nexus": {
      narrow("nexus");
      const { main } = await import("./modes/nexus/main.ts");
      return await main(rest);
    }
    case "keeper": {
      narrow("keeper");
      const { main } = await import("./modes/keeper/main.ts");
      return await main(rest);
    }
    case "pilot": {
      narrow("pilot");
      const { main } = await import("./modes/pilot/main.ts");
      return await main(rest);
    }
    case "--version":
    case "version":
      console.log(`spike ${VERSION}`);
      return 0;
    case "--help":
    case "-h":
    case "help":
      console.log(USAGE);
      return 0;
    default:
      if (mode !== undefined && PILOT_COMMANDS.includes(mode)) {
        // Upstream's CLI is `spike secret get …`; here it is a pilot
        // command. Only a subcommand word is repeated: the other arguments
        // may hold secret values.
        const sub = /^[a-z]+$/.test(rest[0] ?? "") ? ` ${rest[0]}` : "";
        console.error(
          `Unknown mode "${mode}": operator commands run under pilot, as in "spike pilot ${mode}${sub}${
            rest.length > (sub ? 1 : 0) ? " …" : ""
          }"`,
        );
        return 2;
      }
      console.error(
        mode === undefined ? "A mode is required" : `Unknown mode "${mode}"`,
      );
      console.error(USAGE);
      return 2;
  }
}

if (import.meta.main) {
  try {
    Deno.exitCode = await run(Deno.args);
  } catch (e) {
    // One sentence, no stack trace: every error message in SPIKE is
    // written for operators and never carries secret material.
    const denied = permissionErrorOf(e);
    console.error(
      denied !== undefined
        ? describePermissionError(denied)
        : withoutPermissionAdvice(e instanceof Error ? e.message : String(e)),
    );
    Deno.exitCode = 1;
  }
}
