// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Recovery files: `spike.recovery.<i>.txt` holding `spike:<i>:<64 hex>`
 * (no newline), one per shard, mode 0600, in a private folder (created
 * 0700; an existing one must already be closed to group and others). A new
 * set replaces the old one all or nothing. File content is written from
 * bytes and the bytes are zeroed; no shard passes through a JS string.
 *
 * @module
 */
import { zero } from "../../lib/crypto/zero.ts";
import { formatRecoveryText, type Shard } from "../../lib/shard/mod.ts";
import { CliError, lowerFirst, usageError } from "./cli_error.ts";

/**
 * The file name of a recovery shard.
 *
 * @param index the shard index
 * @returns `spike.recovery.<index>.txt`
 */
export function recoveryFileName(index: number): string {
  return `spike.recovery.${index}.txt`;
}

/**
 * A recovery file: what `drill` reads and what `recover` replaces. Exactly
 * `spike.recovery.<digits>.txt`, so notes such as `spike.recovery-notes.txt`
 * are never touched.
 */
const RECOVERY_FILE = /^spike\.recovery\.(\d+)\.txt$/;
/** A temporary or backup of a recover that was killed before it finished. */
const LEFTOVER_FILE =
  /^\.spike\.recovery\.\d+\.txt\.[0-9a-f]{16}\.(?:tmp|old)$/;

/**
 * Makes sure the recovery folder exists and is private: a missing folder
 * (and missing parents) is created with mode 0700; an existing one is used
 * as it is, never chmodded, since it may belong to the wider system
 * (`/tmp`, a shared folder behind a symlink).
 *
 * @param dir the folder
 * @throws {CliError} (usage) when the path is not a folder, or the folder
 *   (after following a symlink) is open to group or others
 */
export async function prepareRecoveryDir(dir: string): Promise<void> {
  let info = await statFolder(dir);
  if (!info) {
    try {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      if (
        e instanceof Deno.errors.AlreadyExists ||
        e instanceof Deno.errors.NotADirectory
      ) {
        throw notAFolder(dir);
      }
      throw e;
    }
    info = await statFolder(dir);
  }
  if (!info?.isDirectory) throw notAFolder(dir);
  // The umask can only remove bits from 0700, so a folder created here
  // passes; a pre-existing open folder (or one raced in) is refused.
  const mode = (info.mode ?? 0) & 0o7777;
  if (mode & 0o077) {
    throw usageError(
      `Recovery folder "${dir}" has mode ${
        mode.toString(8).padStart(4, "0")
      } and is open to group or others: use a private folder (chmod 700 "${dir}") or another SPIKE_PILOT_RECOVERY_DIR`,
    );
  }
}

/** `Deno.stat` (following symlinks), or undefined when nothing is there. */
async function statFolder(dir: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof Deno.errors.NotADirectory) throw notAFolder(dir);
    throw e;
  }
}

function notAFolder(dir: string): CliError {
  return usageError(`Recovery folder "${dir}" exists and is not a folder`);
}

/** One shard's files while `writeRecoveryFiles` replaces them. */
interface Pending {
  /** The temporary file holding the new text until it is renamed. */
  readonly temp: string;
  /** The final `spike.recovery.<i>.txt` path. */
  readonly path: string;
  /** Where a hard link to the previous file at `path` is kept meanwhile. */
  readonly backup: string;
  /** Whether `backup` holds the previous file. */
  backedUp: boolean;
  /** Whether `temp` has been renamed over `path`. */
  renamed: boolean;
}

/**
 * Replaces the recovery files in `dir` all or nothing. Each new file is
 * written to a temporary name in `dir` (created exclusively, mode 0600,
 * fsync'd), then renamed over `spike.recovery.<i>.txt`; only when every
 * rename succeeded are other `spike.recovery.<digits>.txt` files removed.
 * On failure the temporaries are removed and the previous files are put
 * back. The text bytes are zeroed; the shards are left to the caller.
 *
 * @param dir the recovery folder (created 0700 if missing; must be private)
 * @param shards the shards to save
 * @returns the paths written, in shard order
 * @throws {CliError} one sentence naming the folder or file and the cause,
 *   never the shard
 */
export async function writeRecoveryFiles(
  dir: string,
  shards: readonly Shard[],
): Promise<string[]> {
  await prepareRecoveryDir(dir);
  const tag = Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const pending: Pending[] = [];
  try {
    for (const shard of shards) {
      const name = recoveryFileName(shard.index);
      const item: Pending = {
        temp: `${dir}/.${name}.${tag}.tmp`,
        path: `${dir}/${name}`,
        backup: `${dir}/.${name}.${tag}.old`,
        backedUp: false,
        renamed: false,
      };
      pending.push(item);
      await writeTemp(item.temp, shard);
    }
    for (const item of pending) await replace(item);
    await syncFolder(dir);
  } catch (e) {
    const failed = await rollBack(pending);
    throw new CliError(
      `Cannot save the recovery files in "${dir}": ${messageOf(e)}; ${
        failed
          ? `putting back the previous recovery files also failed: ${failed}`
          : "the previous recovery files are unchanged"
      }`,
    );
  }
  await removeOld(dir, pending);
  return pending.map((item) => item.path);
}

function messageOf(e: unknown): string {
  return lowerFirst(e instanceof Error ? e.message : String(e));
}

/** Flushes the folder's entries, so the renames survive a power loss. */
async function syncFolder(dir: string): Promise<void> {
  using folder = await Deno.open(dir, { read: true });
  await folder.sync();
}

/** Writes one shard's text to a new 0600 file and flushes it to disk. */
async function writeTemp(temp: string, shard: Shard): Promise<void> {
  const text = formatRecoveryText(shard);
  try {
    // createNew refuses a file or link planted at the temporary name.
    using file = await Deno.open(temp, {
      write: true,
      createNew: true,
      mode: 0o600,
    });
    let offset = 0;
    while (offset < text.length) {
      offset += await file.write(text.subarray(offset));
    }
    await file.sync();
  } finally {
    zero(text);
  }
  await Deno.chmod(temp, 0o600);
}

/** Keeps a link to the previous file at `item.path`, then renames over it. */
async function replace(item: Pending): Promise<void> {
  let previous: Deno.FileInfo | undefined;
  try {
    previous = await Deno.lstat(item.path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (previous?.isDirectory) {
    throw new Error(`"${item.path}" is a folder, not a recovery file`);
  }
  if (previous) {
    await Deno.link(item.path, item.backup);
    item.backedUp = true;
  }
  await Deno.rename(item.temp, item.path);
  item.renamed = true;
}

/**
 * Undoes a failed replace: puts the previous files back (or removes new
 * ones that had no predecessor) and removes temporaries.
 *
 * @returns "" when all was undone, else the first failure's message
 */
async function rollBack(pending: readonly Pending[]): Promise<string> {
  let failure = "";
  const attempt = async (step: () => Promise<void>, removal = true) => {
    try {
      await step();
    } catch (e) {
      // A temporary that was never created needs no removal.
      if (removal && e instanceof Deno.errors.NotFound) return;
      failure ||= messageOf(e);
    }
  };
  for (const item of [...pending].reverse()) {
    if (item.renamed && item.backedUp) {
      await attempt(() => Deno.rename(item.backup, item.path), false);
    } else if (item.renamed) {
      await attempt(() => Deno.remove(item.path));
    } else {
      await attempt(() => Deno.remove(item.temp));
      if (item.backedUp) await attempt(() => Deno.remove(item.backup));
    }
  }
  return failure;
}

/**
 * After a successful replace: removes the kept links to the previous files,
 * every other `spike.recovery.<digits>.txt` in `dir`, and the temporaries
 * and backups of an earlier recover that was killed before it finished.
 *
 * @throws {CliError} naming the first file that could not be removed
 */
async function removeOld(
  dir: string,
  pending: readonly Pending[],
): Promise<void> {
  const keep = new Set(pending.map((item) => item.path));
  const old = pending.filter((item) => item.backedUp).map((item) =>
    item.backup
  );
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory || keep.has(path)) continue;
    if (RECOVERY_FILE.test(entry.name) || LEFTOVER_FILE.test(entry.name)) {
      old.push(path);
    }
  }
  for (const path of old) {
    try {
      await Deno.remove(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw new CliError(
        `Saved the new recovery files in "${dir}" but cannot remove the older "${path}": ${
          messageOf(e)
        }`,
      );
    }
  }
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
