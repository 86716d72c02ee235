// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Least privilege per mode: at start each mode drops the whole permission
 * classes it never uses, so neither a bug nor a hostile dependency can use
 * them. This also narrows a compiled binary, which carries the union of
 * every mode's permissions.
 *
 * @module
 */

/** A SPIKE mode. */
export type Mode = "nexus" | "keeper" | "pilot";

/** The permission classes each mode gives up at start. */
export const REVOKED_BY_MODE: Readonly<
  Record<Mode, readonly Deno.PermissionName[]>
> = {
  // Nexus writes its store and audit log, but never runs programs.
  nexus: ["run", "ffi"],
  // A keeper holds one shard in memory: nothing to write, nothing to run.
  keeper: ["write", "run", "ffi"],
  // Pilot writes recovery files and cipher output, but never runs programs.
  pilot: ["run", "ffi"],
};

/**
 * Revokes the permission classes `mode` does not need.
 *
 * @param mode the mode about to run
 */
export function narrowPermissions(mode: Mode): void {
  for (const name of REVOKED_BY_MODE[mode]) {
    Deno.permissions.revokeSync({ name } as Deno.PermissionDescriptor);
  }
}

/**
 * The state of every permission class, for the debug log that proves the
 * narrowing.
 *
 * @returns class name -> "granted" | "prompt" | "denied"
 */
export function permissionStates(): Record<string, string> {
  const names: Deno.PermissionName[] = [
    "read",
    "write",
    "net",
    "env",
    "run",
    "ffi",
    "sys",
  ];
  return Object.fromEntries(
    names.map((name) => [
      name,
      Deno.permissions.querySync({ name } as Deno.PermissionDescriptor).state,
    ]),
  );
}
