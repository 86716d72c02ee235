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
  // (With a Workload API unix socket it keeps write: Deno requires it to
  // connect to the socket, and the launcher scopes it to that path.)
  keeper: ["write", "run", "ffi"],
  // Pilot writes recovery files and cipher output, but never runs programs.
  pilot: ["run", "ffi"],
};

/**
 * Whether this process takes its SVID from a Workload API unix socket:
 * Deno needs write access to connect to a unix socket, so such a keeper
 * keeps its (launcher-scoped) write permission.
 */
function usesUnixSocket(): boolean {
  try {
    const svidDir = Deno.env.get("SPIKE_SVID_DIR");
    const socket = Deno.env.get("SPIFFE_ENDPOINT_SOCKET") ?? "";
    return !svidDir && socket.startsWith("unix:");
  } catch {
    // No access to the variables: the mode cannot be configured for a socket.
    return false;
  }
}

/**
 * The classes `mode` gives up in this configuration.
 *
 * @param mode the mode about to run
 * @returns the permission names to revoke
 */
function revokedClasses(mode: Mode): Deno.PermissionName[] {
  return REVOKED_BY_MODE[mode].filter((name) =>
    !(name === "write" && usesUnixSocket())
  );
}

/**
 * Revokes the permission classes `mode` does not need.
 *
 * @param mode the mode about to run
 */
export function narrowPermissions(mode: Mode): void {
  for (const name of revokedClasses(mode)) {
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
