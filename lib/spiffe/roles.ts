// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * SPIKE's roles and the SPIFFE IDs that carry them, as upstream SPIKE
 * defines them: a peer has a role when its ID equals the role's base ID in
 * one of the role's trust roots, or lies below it (`base + "/"`).
 *
 * Trust roots come from `SPIKE_TRUST_ROOT_<ROLE>` (a comma list), then
 * `SPIKE_TRUST_ROOT`, then the trust domain of this process's own SVID
 * (once {@linkcode adoptOwnTrustDomain} ran), then `spike.ist`. The
 * variables are read at every call so a changed environment takes effect
 * at once.
 *
 * @module
 */
import process from "node:process";
import { ConfigError } from "../config/env.ts";
import type { Logger } from "../log.ts";
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

/** The variable that sets a role's trust roots now, if any is set. */
function governingVariable(role: Role): string | undefined {
  return [TRUST_ROOT_VARIABLES[role], TRUST_ROOT_FALLBACK_VARIABLE].find(
    (name) => {
      const raw = process.env[name];
      // Unset or blank means "not configured"; anything else must be valid.
      return raw !== undefined && raw.trim() !== "";
    },
  );
}

function configuredRoots(role: Role): readonly string[] {
  const name = governingVariable(role);
  if (name !== undefined) return cachedTrustRoots(name, process.env[name]!);
  return ownRoots ?? DEFAULT_ROOTS;
}

const DEFAULT_ROOTS: readonly string[] = [DEFAULT_TRUST_ROOT];
// The trust domain of this process's own SVID, once adopted.
let ownRoots: readonly string[] | undefined;

/**
 * Makes the trust domain of this process's own SVID the trust root of
 * every role no `SPIKE_TRUST_ROOT*` variable configures, so an install in
 * `example.org` works without setting them (before, such roles fell back
 * to `spike.ist` and the process refused its own identity). Says so once,
 * at WARN when the domain is not the built-in `spike.ist`.
 *
 * @param own this process's SPIFFE ID
 * @param log where to say which trust domain was taken
 */
export function adoptOwnTrustDomain(own: SpiffeId, log: Logger): void {
  if (ownRoots !== undefined) return;
  ownRoots = [own.trustDomain];
  const unset = ROLES.filter((role) => governingVariable(role) === undefined);
  if (unset.length === 0) return;
  const say = own.trustDomain === DEFAULT_TRUST_ROOT ? log.info : log.warn;
  say(
    `${TRUST_ROOT_FALLBACK_VARIABLE} is not set: SPIKE roles are trusted in this SVID's trust domain; set ${TRUST_ROOT_FALLBACK_VARIABLE}=${own.trustDomain} to say so explicitly`,
    { trustDomain: own.trustDomain },
  );
}

/**
 * Where a role's trust domains come from, for messages: e.g.
 * `"spike.ist" (from SPIKE_TRUST_ROOT)`.
 *
 * @param role the role
 * @returns the trust domains and their source
 * @throws {ConfigError} when the trust root variables are invalid
 */
export function describeTrustRoots(role: Role): string {
  const domains = configuredRoots(role).map((td) => `"${td}"`).join(", ");
  const variable = governingVariable(role);
  if (variable !== undefined) return `${domains} (from ${variable})`;
  return ownRoots === undefined
    ? `${domains} (the default)`
    : `${domains} (this SVID's own; ${TRUST_ROOT_FALLBACK_VARIABLE} is not set)`;
}

/**
 * Why this process's own SVID cannot serve as `role`, in one sentence that
 * says what to change, or undefined when it can.
 *
 * @param own this process's SPIFFE ID
 * @param role the role the mode needs, e.g. `nexus`
 * @param mode the mode's name for the sentence
 * @returns the problem, or undefined
 * @throws {ConfigError} when the trust root variables are invalid
 */
export function ownRoleProblem(
  own: SpiffeId,
  role: Role,
  mode: string,
): string | undefined {
  if (hasRole(own, role)) return undefined;
  const variable = governingVariable(role);
  if (variable !== undefined && !trustRoots(role).includes(own.trustDomain)) {
    return `This SVID (${own.uri}) is in trust domain "${own.trustDomain}", but ${variable} is "${
      process.env[variable]!.trim()
    }": set ${variable}=${own.trustDomain} (or add it to the list)`;
  }
  return `This SVID (${own.uri}) is not a ${mode} identity: ${mode} needs ${
    roleId(role, own.trustDomain)
  }`;
}

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
