// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Recovery files: `spike.recovery.<i>.txt` holding `spike:<i>:<64 hex>`
 * (no newline), one per shard, mode 0600, in a folder of mode 0700. File
 * content is written from bytes and the bytes are zeroed; no shard passes
 * through a JS string.
 *
 * @module
 */
import { zero } from "../../lib/crypto/zero.ts";
import { formatRecoveryText, type Shard } from "../../lib/shard/mod.ts";
import { CliError } from "./cli_error.ts";

/**
 * The file name of a recovery shard.
 *
 * @param index the shard index
 * @returns `spike.recovery.<index>.txt`
 */
export function recoveryFileName(index: number): string {
  return `spike.recovery.${index}.txt`;
}

/** The files `recover` replaces: upstream removes `spike.recovery*.txt`. */
const OLD_RECOVERY_FILE = /^spike\.recovery.*\.txt$/;
/** The files `drill` reads by default. */
const RECOVERY_FILE = /^spike\.recovery\.(\d+)\.txt$/;

/**
 * The recovery folder: `SPIKE_PILOT_RECOVERY_DIR`, else `~/.spike/recover`,
 * else `/tmp/.spike-$USER/recover`.
 *
 * @returns an absolute path
 */
export function recoveryDir(): string {
  const configured = Deno.env.get("SPIKE_PILOT_RECOVERY_DIR")?.trim();
  const home = Deno.env.get("HOME")?.trim();
  const dir = configured
    ? configured
    : home
    ? `${home}/.spike/recover`
    : `/tmp/.spike-${Deno.env.get("USER")?.trim() || "spike"}/recover`;
  return dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`;
}

/**
 * Creates the recovery folder with mode 0700, or sets 0700 on an existing one.
 *
 * @param dir the folder
 * @throws {CliError} when the path exists and is not a folder
 */
export async function prepareRecoveryDir(dir: string): Promise<void> {
  const notAFolder = () =>
    new CliError(`Recovery folder "${dir}" exists and is not a folder`);
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    if (
      e instanceof Deno.errors.AlreadyExists ||
      e instanceof Deno.errors.NotADirectory
    ) {
      throw notAFolder();
    }
    throw e;
  }
  if (!(await Deno.stat(dir)).isDirectory) throw notAFolder();
  await Deno.chmod(dir, 0o700);
}

/**
 * Replaces the recovery files in `dir`: removes every `spike.recovery*.txt`,
 * then writes one new file per shard (created exclusively, mode 0600).
 * The text bytes are zeroed after writing; the shards are left to the caller.
 *
 * @param dir the recovery folder (created if missing)
 * @param shards the shards to save
 * @returns the paths written, in shard order
 * @throws {CliError} when a file cannot be written, naming it
 */
export async function writeRecoveryFiles(
  dir: string,
  shards: readonly Shard[],
): Promise<string[]> {
  await prepareRecoveryDir(dir);
  for await (const entry of Deno.readDir(dir)) {
    if (OLD_RECOVERY_FILE.test(entry.name) && !entry.isDirectory) {
      await Deno.remove(`${dir}/${entry.name}`);
    }
  }
  const written: string[] = [];
  for (const shard of shards) {
    const path = `${dir}/${recoveryFileName(shard.index)}`;
    const text = formatRecoveryText(shard);
    try {
      // createNew refuses a file or link planted since the cleanup.
      using file = await Deno.open(path, {
        write: true,
        createNew: true,
        mode: 0o600,
      });
      let offset = 0;
      while (offset < text.length) {
        offset += await file.write(text.subarray(offset));
      }
      await Deno.chmod(path, 0o600);
    } catch (e) {
      throw new CliError(
        `Cannot save shard ${shard.index} to "${path}": ${
          e instanceof Error ? e.message : String(e)
        }`,
      );
    } finally {
      zero(text);
    }
    written.push(path);
  }
  return written;
}

/**
 * The recovery files in `dir`, by shard index.
 *
 * @param dir the recovery folder
 * @returns paths of `spike.recovery.<i>.txt` files, ordered by index; empty
 *   when the folder does not exist
 */
export async function findRecoveryFiles(dir: string): Promise<string[]> {
  const found: [number, string][] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      const match = RECOVERY_FILE.exec(entry.name);
      if (match && entry.isFile) {
        found.push([Number(match[1]), `${dir}/${entry.name}`]);
      }
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return found.sort((a, b) => a[0] - b[0]).map(([, path]) => path);
}
