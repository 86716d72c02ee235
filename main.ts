// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * SPIKE: a SPIFFE-native secrets manager. One program, three modes:
 * `spike nexus`, `spike keeper`, `spike pilot …`.
 *
 * @module
 */
import { narrowPermissions } from "./lib/permissions.ts";

/** The program version, printed by `--version`. */
export const VERSION = "0.1.0";

const USAGE = `SPIKE ${VERSION}: secure your secrets with SPIFFE

Usage:
  spike nexus            run the secrets store (REST over SPIFFE mTLS)
  spike keeper           run a keeper (holds one shard of the root key)
  spike pilot <command>  operator CLI (run "spike pilot --help")
  spike --version        print the version
  spike --help           print this help
`;

async function run(args: string[]): Promise<number> {
  const [mode, ...rest] = args;
  switch (mode) {
    case "nexus": {
      narrowPermissions("nexus");
      const { main } = await import("./modes/nexus/main.ts");
      return await main(rest);
    }
    case "keeper": {
      narrowPermissions("keeper");
      const { main } = await import("./modes/keeper/main.ts");
      return await main(rest);
    }
    case "pilot": {
      narrowPermissions("pilot");
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
      console.error(
        mode === undefined ? "A mode is required" : `Unknown mode "${mode}"`,
      );
      console.error(USAGE);
      return 2;
  }
}

if (import.meta.main) {
  Deno.exitCode = await run(Deno.args);
}
