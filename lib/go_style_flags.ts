// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Go-style flags for a `node:util` parseArgs command line. Upstream SPIKE's
 * CLI is Go (Cobra), and Go programs accept a long flag after one dash
 * (`-format=json`, `-version 2`) and `-v=2`. parseArgs reads `-format=json`
 * as the short flag `-f` with the value `ormat=json`: a silent wrong value.
 * This rewrites those forms into the ones parseArgs reads as meant.
 *
 * @module
 */

/** The part of a parseArgs option this needs. */
export interface FlagOption {
  /** One-letter alias. */
  readonly short?: string;
}

/**
 * Rewrites, before any `--`, a single-dash long flag (`-format`,
 * `-format=json`) into its double-dash form, and a short flag with `=`
 * (`-v=2`) into the long flag with that value. Everything else, bundled
 * short flags (`-fjson`) included, stays as it is.
 *
 * @param args the command line
 * @param options the command's options by long name (`help` is implied)
 * @returns the rewritten command line
 */
export function normalizeGoStyleFlags(
  args: readonly string[],
  options: Readonly<Record<string, FlagOption>>,
): string[] {
  const all: Record<string, FlagOption> = {
    help: { short: "h" },
    ...options,
  };
  const longOf = (short: string) =>
    Object.entries(all).find(([, o]) => o.short === short)?.[0];
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    if (!arg.startsWith("-") || arg.startsWith("--") || arg.length < 3) {
      out.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(1) : arg.slice(1, eq);
    const value = eq < 0 ? "" : arg.slice(eq);
    if (Object.hasOwn(all, name) && name.length > 1) {
      out.push(`--${name}${value}`);
    } else if (name.length === 1 && eq === 2 && longOf(name) !== undefined) {
      out.push(`--${longOf(name)}${value}`);
    } else {
      out.push(arg);
    }
  }
  return out;
}
