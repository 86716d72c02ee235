// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * SPIKE's roles and the SPIFFE IDs that carry them, as upstream SPIKE
 * defines them: a peer has a role when its ID equals the role's base ID in
 * one of the role's trust roots, or lies below it (`base + "/"`).
 *
 * Trust roots come from `SPIKE_TRUST_ROOT_<ROLE>` (a comma list), then
 * `SPIKE_TRUST_ROOT`, then `spike.ist`, read at every call so a changed
 * environment takes effect at once.
 *
 * @module
 */
import process from "node:process";
import { ConfigError } from "../config/env.ts";
import {
  parseSpiffeId,
  type SpiffeId,
  SpiffeIdError,
  validateTrustDomain,
} from "./id.ts";

/** A role a SPIFFE ID can carry. */
export type Role =
  | "nexus"
  | "keeper"
  | "superuser"
  | "recover"
  | "restore"
  | "bootstrap"
  | "lite";

/** Every role, in a stable order. */
export const ROLES: readonly Role[] = [
  "nexus",
  "keeper",
  "superuser",
  "recover",
  "restore",
  "bootstrap",
  "lite",
];

/** The path of each role's base SPIFFE ID. */
export const ROLE_PATHS: Readonly<Record<Role, string>> = {
  nexus: "/spike/nexus",
  keeper: "/spike/keeper",
  superuser: "/spike/pilot/role/superuser",
  recover: "/spike/pilot/role/recover",
  restore: "/spike/pilot/role/restore",
  bootstrap: "/spike/bootstrap",
  lite: "/spike/workload/role/lite",
};

/** The environment variable holding each role's trust roots. */
export const TRUST_ROOT_VARIABLES: Readonly<Record<Role, string>> = {
  nexus: "SPIKE_TRUST_ROOT_NEXUS",
  keeper: "SPIKE_TRUST_ROOT_KEEPER",
  superuser: "SPIKE_TRUST_ROOT_PILOT",
  recover: "SPIKE_TRUST_ROOT_PILOT",
  restore: "SPIKE_TRUST_ROOT_PILOT",
  bootstrap: "SPIKE_TRUST_ROOT_BOOTSTRAP",
  lite: "SPIKE_TRUST_ROOT_LITE_WORKLOAD",
};

/** The variable every role falls back to. */
export const TRUST_ROOT_FALLBACK_VARIABLE = "SPIKE_TRUST_ROOT";
/** The trust root when no variable is set. */
export const DEFAULT_TRUST_ROOT = "spike.ist";

// Parsed lists by variable and value: the variables are read on every
// authorization (so a changed environment takes effect at once), but parsed
// only when their value is new.
const parsedRoots = new Map<string, readonly string[]>();

function cachedTrustRoots(name: string, raw: string): readonly string[] {
  const key = `${name}=${raw}`;
  let roots = parsedRoots.get(key);
  if (roots === undefined) {
    roots = parseTrustRoots(name, raw);
    parsedRoots.set(key, roots);
  }
  return roots;
}

function parseTrustRoots(name: string, raw: string): string[] {
  const roots = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (roots.length === 0) {
    throw new ConfigError(`${name} holds no trust domain`);
  }
  for (const root of roots) {
    try {
      validateTrustDomain(root);
    } catch (e) {
      if (e instanceof SpiffeIdError) {
        throw new ConfigError(
          `${name} holds an invalid trust domain "${root}": ${e.message}`,
        );
      }
      throw e;
    }
  }
  return [...new Set(roots)];
}

/**
 * The trust domains a role is accepted from.
 *
 * @param role the role
 * @returns at least one trust domain name, without duplicates
 * @throws {ConfigError} when the governing variable is set but holds no
 *   valid entry or an invalid trust domain
 */
export function trustRoots(role: Role): string[] {
  return [...configuredRoots(role)];
}

function configuredRoots(role: Role): readonly string[] {
  for (
    const name of [TRUST_ROOT_VARIABLES[role], TRUST_ROOT_FALLBACK_VARIABLE]
  ) {
    const raw = process.env[name];
    // Unset or blank means "not configured"; anything else must be valid.
    if (raw !== undefined && raw.trim() !== "") {
      return cachedTrustRoots(name, raw);
    }
  }
  return DEFAULT_ROOTS;
}

const DEFAULT_ROOTS: readonly string[] = [DEFAULT_TRUST_ROOT];

/**
 * Checks the trust roots of every role, so a mode can stop its start on an
 * invalid `SPIKE_TRUST_ROOT_*` or `SPIKE_TRUST_ROOT` value instead of
 * failing each later authorization. Roles still read the variables at
 * every call.
 *
 * @throws {ConfigError} naming the first variable that holds no valid
 *   entry or an invalid trust domain
 */
export function checkTrustRootConfig(): void {
  for (const role of ROLES) configuredRoots(role);
  // The fallback counts even when every role has its own variable.
  const raw = process.env[TRUST_ROOT_FALLBACK_VARIABLE];
  if (raw !== undefined && raw.trim() !== "") {
    cachedTrustRoots(TRUST_ROOT_FALLBACK_VARIABLE, raw);
  }
}

/**
 * The canonical SPIFFE ID of a role.
 *
 * @param role the role
 * @param trustDomain the trust domain; default the role's first trust root
 * @returns e.g. `spiffe://spike.ist/spike/nexus`
 * @throws {SpiffeIdError} when `trustDomain` is not a valid trust domain
 * @throws {ConfigError} when the trust root variables are invalid
 */
export function roleId(role: Role, trustDomain?: string): string {
  const td = trustDomain ?? configuredRoots(role)[0]!;
  validateTrustDomain(td);
  return `spiffe://${td}${ROLE_PATHS[role]}`;
}

function toId(id: SpiffeId | string): SpiffeId | undefined {
  if (typeof id !== "string") return id;
  try {
    return parseSpiffeId(id);
  } catch (e) {
    if (e instanceof SpiffeIdError) return undefined;
    throw e;
  }
}

/**
 * Whether a SPIFFE ID carries a role: it equals the role's base ID in one of
 * the role's trust roots, or starts with that base followed by `/`.
 *
 * @param id a parsed ID, or a string (an invalid string has no role)
 * @param role the role
 * @returns true when the ID carries the role
 * @throws {ConfigError} when the trust root variables are invalid
 */
export function hasRole(id: SpiffeId | string, role: Role): boolean {
  const roots = configuredRoots(role);
  const parsed = toId(id);
  if (parsed === undefined) return false;
  const base = ROLE_PATHS[role];
  return roots.includes(parsed.trustDomain) &&
    (parsed.path === base || parsed.path.startsWith(base + "/"));
}

/**
 * Every role a SPIFFE ID carries.
 *
 * @param id a parsed ID, or a string (an invalid string has no role)
 * @returns the roles, in {@linkcode ROLES} order
 * @throws {ConfigError} when the trust root variables are invalid
 */
export function rolesOf(id: SpiffeId | string): Role[] {
  return ROLES.filter((role) => hasRole(id, role));
}
