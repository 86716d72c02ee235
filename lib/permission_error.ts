// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Deno's permission errors in SPIKE's words. Deno says "Requires read
 * access to "/x", run again with the --allow-read flag": advice about
 * `deno run` flags that an operator of the compiled binary or of
 * `deno task spike` cannot act on. SPIKE says what it could not do and why.
 *
 * @module
 */

const WHAT: Readonly<Record<string, (target: string) => string>> = {
  read: (target) => `read ${target}`,
  write: (target) => `write ${target}`,
  net: (target) => `connect to ${target}`,
  env: (target) => `read the environment variable ${target}`,
  run: (target) => `run ${target}`,
  sys: (target) => `read the system information ${target}`,
  ffi: (target) => `load the library ${target}`,
};

/**
 * Tells whether an error (or its cause) is a Deno permission refusal.
 *
 * @param error anything thrown
 * @returns the permission error, or undefined
 */
export function permissionErrorOf(
  error: unknown,
): Deno.errors.NotCapable | Deno.errors.PermissionDenied | undefined {
  let e = error;
  // A few levels of causes: the mTLS client wraps the socket's error.
  for (let depth = 0; depth < 5 && e instanceof Error; depth++) {
    if (
      e instanceof Deno.errors.NotCapable ||
      e instanceof Deno.errors.PermissionDenied
    ) {
      return e;
    }
    e = e.cause;
  }
  return undefined;
}

/**
 * One sentence for a permission refusal, without Deno's flag advice.
 *
 * @param error a `NotCapable` or `PermissionDenied` error
 * @returns e.g. `Cannot read "/x": this process was not granted access to it
 *   (deno task spike grants each mode only the files, hosts and variables its
 *   configuration names)`
 */
export function describePermissionError(error: Error): string {
  const match = /Requires (\w+) access to (.+?), run again with/.exec(
    error.message,
  );
  const why =
    "this process was not granted access to it (deno task spike grants each mode only the files, hosts and variables its configuration and arguments name)";
  if (match === null) {
    // An operating system refusal (file mode, ownership): no Deno advice in it.
    return error instanceof Deno.errors.PermissionDenied
      ? error.message
      : `An operation was refused: ${why}`;
  }
  const [, kind, target] = match;
  const what = WHAT[kind!] ?? ((t: string) => `use ${t}`);
  return `Cannot ${what(target!)}: ${why}`;
}

/**
 * Rewrites any Deno permission message inside a text (an error that wrapped
 * another's message) into SPIKE's words, so no `--allow-*` advice reaches
 * an operator.
 *
 * @param text a message
 * @returns the message with each "Requires … access to …, run again with
 *   the --allow-… flag" replaced by "no access to … was granted"
 */
export function withoutPermissionAdvice(text: string): string {
  return text.replace(
    /requires (\w+) access to (.+?), run again with the --allow-\w+ flag/gi,
    (_, kind: string, target: string) =>
      `no ${kind} access to ${target} was granted to this process`,
  );
}
