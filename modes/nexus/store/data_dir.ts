// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Where nexus keeps its database: `SPIKE_NEXUS_DATA_DIR`, else
 * `~/.spike/data`. Unlike upstream (which appends `/data` to the variable
 * and silently falls back on a bad value), the variable names the data
 * directory itself and a bad value is an error.
 *
 * @module
 */
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { ConfigError } from "../../../lib/config/env.ts";

/** System directories that never hold SPIKE data (nor their subpaths). */
export const RESTRICTED_DIRS: readonly string[] = [
  "/",
  "/etc",
  "/sys",
  "/proc",
  "/dev",
  "/bin",
  "/sbin",
  "/usr",
  "/lib",
  "/lib64",
  "/boot",
  "/root",
];

function isRestricted(dir: string): boolean {
  return RESTRICTED_DIRS.some((r) =>
    r === "/" ? dir === "/" : dir === r || dir.startsWith(r + "/")
  );
}

// The path with symbolic links resolved: of the directory itself when it
// exists (it may be a link), else of its parent, which must exist.
function realPath(dir: string): string {
  try {
    return Deno.realPathSync(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const parent = dirname(dir);
  try {
    return join(Deno.realPathSync(parent), basename(dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(
        `SPIKE_NEXUS_DATA_DIR ${dir}: the parent directory ${parent} does not exist`,
      );
    }
    throw e;
  }
}

// Whether `dir` lies below the user's home. The home itself may be a
// restricted directory (`/root` for root): the default data directory is
// below it, so a custom one there is allowed too. A home of `/` grants
// nothing.
function belowHome(dir: string, home: string | undefined): boolean {
  return home !== undefined && home !== "/" && dir.startsWith(home + "/");
}

function realHome(home: string | undefined): string | undefined {
  if (home === undefined) return undefined;
  try {
    return Deno.realPathSync(home);
  } catch (e) {
    // Unknown (or not readable under scoped permissions): the home as
    // written, which a linked home does not match, so nothing more passes.
    if (
      e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotCapable
    ) {
      return home;
    }
    throw e;
  }
}

/**
 * Resolves the nexus data directory and checks that it may be used. A
 * custom directory must not be (or resolve, through symbolic links, into) a
 * restricted system directory, unless it lies below `HOME` (both as
 * written and resolved), where the default `~/.spike/data` is too; its
 * parent must exist. Does not create anything.
 *
 * @param env where to read `SPIKE_NEXUS_DATA_DIR` and `HOME` (default: the
 * process environment)
 * @returns the absolute directory path
 * @throws {ConfigError} for a restricted directory, a missing parent, or
 * no `HOME` when the variable is unset
 */
export function resolveDataDir(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): string {
  const custom = env("SPIKE_NEXUS_DATA_DIR")?.trim();
  const home = env("HOME")?.trim();
  if (!custom) {
    if (!home || !isAbsolute(home)) {
      throw new ConfigError(
        "HOME is not set to an absolute path: set SPIKE_NEXUS_DATA_DIR to the nexus data directory",
      );
    }
    return join(home, ".spike", "data");
  }
  const dir = resolve(custom);
  const refused = () =>
    new ConfigError(
      `SPIKE_NEXUS_DATA_DIR cannot be ${dir}: system directories (${
        RESTRICTED_DIRS.join(", ")
      } and below) are refused outside your HOME, choose a directory of your own`,
    );
  const ownHome = home && isAbsolute(home) ? resolve(home) : undefined;
  // The lexical check comes first: some system paths cannot even be probed.
  const inHome = belowHome(dir, ownHome);
  if (isRestricted(dir) && !inHome) throw refused();
  const real = realPath(dir);
  if (isRestricted(real) && !(inHome && belowHome(real, realHome(ownHome)))) {
    throw refused();
  }
  return dir;
}

/**
 * Creates the data directory (and missing parents) with mode 0700 if needed
 * and tightens an existing one to 0700.
 *
 * @param dir the directory from {@linkcode resolveDataDir}
 * @throws {ConfigError} when the path exists but is not a directory
 */
export function prepareDataDir(dir: string): void {
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
  if (!Deno.statSync(dir).isDirectory) {
    throw new ConfigError(`The nexus data directory ${dir} is not a directory`);
  }
  // mkdir's mode is filtered by the umask, and an existing directory may be
  // looser; either way the directory ends up private. A directory that is
  // private already is left alone, so a read-only volume still opens.
  if (((Deno.statSync(dir).mode ?? 0) & 0o777) !== 0o700) {
    Deno.chmodSync(dir, 0o700);
  }
}
