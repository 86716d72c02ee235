// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Where pilot keeps recovery shard files. One rule, read by pilot and by
 * the launcher that grants pilot access to the folder.
 *
 * @module
 */

/**
 * The recovery folder: `SPIKE_PILOT_RECOVERY_DIR`, else `~/.spike/recover`,
 * else `/tmp/.spike-$USER/recover`; a relative path is taken from `cwd`.
 *
 * @param env reads a variable (default: the process environment)
 * @param cwd the folder relative paths start from (default: the current one)
 * @returns an absolute path
 */
export function resolveRecoveryDir(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  cwd: string = Deno.cwd(),
): string {
  const configured = env("SPIKE_PILOT_RECOVERY_DIR")?.trim();
  const home = env("HOME")?.trim();
  const dir = configured
    ? configured
    : home
    ? `${home}/.spike/recover`
    : `/tmp/.spike-${env("USER")?.trim() || "spike"}/recover`;
  return dir.startsWith("/") ? dir : `${cwd}/${dir}`;
}
