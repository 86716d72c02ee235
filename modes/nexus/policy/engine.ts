// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The policy engine: compiled policies held in memory, consulted on every
 * policy-checked request. Upstream loaded, decrypted and recompiled every
 * policy per request; here policies are compiled once, when they are loaded
 * from the store or written, and dropped when deleted.
 *
 * @module
 */
import { MAX_SPIFFE_ID_BYTES } from "../../../lib/spiffe/id.ts";
import {
  isReservedPath,
  MAX_NAME_LENGTH,
  MAX_PATH_LENGTH,
  type Permission,
  validatePathPattern,
  validatePermissions,
  validatePolicyName,
  validateSpiffeIdPattern,
} from "../../../lib/wire/validate.ts";
import { compileAnchored, reachesReservedPaths } from "./pattern.ts";
import { literalPrefix } from "./literal_prefix.ts";

export type { Permission } from "../../../lib/wire/validate.ts";

/** A policy as the store keeps it. The name is its identity. */
export interface PolicyRecord {
  /** Unique name, 1–250 characters of letters, digits, `-`, `_`, space. */
  readonly name: string;
  /** Pattern over the caller's whole SPIFFE ID, e.g. `spiffe://spike\.ist/workload/.*`. */
  readonly spiffeIdPattern: string;
  /** Pattern over the whole secret or system path, e.g. `tenants/acme/.*`. */
  readonly pathPattern: string;
  /** What the policy grants; `super` grants everything. */
  readonly permissions: Permission[];
  /** When the policy was first written, RFC 3339 UTC (`Date.toISOString()`). */
  readonly createdAt: string;
  /** When the policy was last written, RFC 3339 UTC. */
  readonly updatedAt: string;
}

/**
 * The fields the engine reads from a stored policy. Looser than
 * {@linkcode PolicyRecord} (permissions as plain strings, no times) so the
 * store's records can be passed as they are; the engine validates them.
 */
export interface PolicyFields {
  /** The policy name. */
  readonly name: string;
  /** Pattern over the caller's whole SPIFFE ID. */
  readonly spiffeIdPattern: string;
  /** Pattern over the whole path. */
  readonly pathPattern: string;
  /** Granted permissions; unknown names make the record invalid. */
  readonly permissions: readonly string[];
}

/** Gives the current policy records, e.g. from the encrypted store. */
export type PolicyRecordSource = () =>
  | Iterable<PolicyFields>
  | Promise<Iterable<PolicyFields>>;

/** A stored policy that {@linkcode PolicyEngine.load} skipped. */
export interface PolicyLoadProblem {
  /** The policy's name (cut to 250 characters). */
  readonly name: string;
  /** Why it was skipped; names the broken rule, never a secret. */
  readonly reason: string;
}

interface CompiledPolicy {
  readonly id: RegExp;
  readonly path: RegExp;
  /** Every path the policy matches starts with this. */
  readonly pathPrefix: string;
  readonly permissions: ReadonlySet<Permission>;
  /** Whether the path pattern names `spike/system` literally. */
  readonly reserved: boolean;
}

/** What a caller may see of the secret list. */
export interface ListGrant {
  /** Every listable path starts with one of these. */
  readonly prefixes: readonly string[];
  /** Whether the caller may see this path. */
  allows(path: string): boolean;
}

function compile(record: PolicyFields): CompiledPolicy {
  // Stored records are checked again: a record written by an older version
  // or edited on disk must not bring back a pattern the API would refuse.
  validatePolicyName(record.name);
  const pathPattern = validatePathPattern(record.pathPattern);
  return {
    id: compileAnchored(validateSpiffeIdPattern(record.spiffeIdPattern)),
    path: compileAnchored(pathPattern),
    pathPrefix: literalPrefix(pathPattern),
    permissions: new Set(validatePermissions(record.permissions)),
    reserved: reachesReservedPaths(pathPattern),
  };
}

function grants(
  policy: CompiledPolicy,
  wanted: readonly Permission[],
): boolean {
  return policy.permissions.has("super") ||
    wanted.every((p) => policy.permissions.has(p));
}

/** Callers whose matching policies are remembered at once. */
const MAX_CACHED_CALLERS = 10_000;

/**
 * Holds the compiled policies and answers "may this SPIFFE ID do this on
 * this path". Patterns match whole strings only (see `compileAnchored`), so
 * `acme` does not match `tenants/acme/db` while `tenants/acme/.*` does.
 *
 * Reserved system paths (`spike/system/acl`, `spike/system/secret`,
 * `spike/system/cipher/exec`) grant policy administration, the secret list
 * and the cipher. A policy reaches them only when its path pattern fully
 * matches the path and names the `spike/system` prefix literally (see
 * `reachesReservedPaths`): `spike/system/.*` does, `.*` does not. A policy
 * granting "all secrets" with `.*` would otherwise also grant the right to
 * write policies, and with it `super` on everything.
 *
 * Callers keep the engine in step with the store: {@linkcode load} or
 * {@linkcode reload} at start, {@linkcode upsert} / {@linkcode remove} after
 * each successful store write.
 */
export class PolicyEngine {
  #policies = new Map<string, CompiledPolicy>();
  // The policies whose SPIFFE-ID pattern matches a caller, per caller: with
  // many policies, matching every ID pattern on every request dominated the
  // policy check. Any change of policies clears it.
  #byCaller = new Map<string, CompiledPolicy[]>();

  /** The number of policies held. */
  get size(): number {
    return this.#policies.size;
  }

  /**
   * Replaces every held policy with `records`. A record that fails
   * validation is skipped (it grants nothing) and reported, so one bad
   * stored policy does not take the others down.
   *
   * @param records the complete set of policies
   * @returns the skipped records, empty when all loaded
   */
  load(records: Iterable<PolicyFields>): PolicyLoadProblem[] {
    const next = new Map<string, CompiledPolicy>();
    const problems: PolicyLoadProblem[] = [];
    for (const record of records) {
      try {
        next.set(record.name, compile(record));
      } catch (error) {
        problems.push({
          name: String(record.name).slice(0, MAX_NAME_LENGTH),
          reason: error instanceof Error ? error.message : String(error),
        });
      }
    }
    this.#policies = next;
    this.#byCaller.clear();
    return problems;
  }

  /**
   * Replaces every held policy with what `source` gives now. When the source
   * fails, the held policies stay as they were and the error propagates.
   *
   * @param source where the records come from
   * @returns the skipped records, as {@linkcode load}
   */
  async reload(source: PolicyRecordSource): Promise<PolicyLoadProblem[]> {
    return this.load(await source());
  }

  /**
   * Adds a policy or replaces the one with the same name.
   *
   * @param record the policy as stored
   * @throws {ValidationError} when the record breaks a policy rule; the
   *   held policies are then unchanged
   */
  upsert(record: PolicyFields): void {
    this.#policies.set(record.name, compile(record));
    this.#byCaller.clear();
  }

  /**
   * Drops a policy; its grants end at once.
   *
   * @param name the policy's name
   * @returns whether a policy of that name was held
   */
  remove(name: string): boolean {
    this.#byCaller.clear();
    return this.#policies.delete(name);
  }

  /** The policies whose SPIFFE-ID pattern matches the whole `peerId`. */
  #policiesOf(peerId: string): CompiledPolicy[] {
    let mine = this.#byCaller.get(peerId);
    if (mine === undefined) {
      mine = [...this.#policies.values()].filter((p) => p.id.test(peerId));
      if (this.#byCaller.size >= MAX_CACHED_CALLERS) this.#byCaller.clear();
      this.#byCaller.set(peerId, mine);
    }
    return mine;
  }

  /**
   * Tells whether some policy matches the whole `peerId`, matches the whole
   * `path`, and grants every wanted permission (or `super`).
   *
   * @param peerId the caller's SPIFFE ID
   * @param path a secret path or a reserved system path
   * @param wanted the permissions the operation needs; an empty list is
   *   never allowed, so a caller bug cannot turn into a grant
   * @returns true when allowed
   */
  allows(
    peerId: string,
    path: string,
    wanted: readonly Permission[],
  ): boolean {
    if (wanted.length === 0 || !withinBounds(peerId, path)) return false;
    const reserved = isReservedPath(path);
    return this.#policiesOf(peerId).some((policy) =>
      (policy.reserved || !reserved) && grants(policy, wanted) &&
      policy.path.test(path)
    );
  }

  /**
   * The paths on which some policy grants `peerId` the `list` permission
   * (or `super`), for the secret list operation: a test per path, and the
   * literal prefixes of those policies' path patterns, so the listing reads
   * only their ranges.
   *
   * @param peerId the caller's SPIFFE ID
   * @returns the grant; no prefixes when nothing is listable
   */
  listGrant(peerId: string): ListGrant {
    const mine = withinBounds(peerId, "")
      ? this.#policiesOf(peerId).filter((policy) => grants(policy, ["list"]))
      : [];
    return {
      prefixes: mine.map((p) => p.pathPrefix),
      allows: (path) =>
        withinBounds(peerId, path) && mine.some((p) => p.path.test(path)),
    };
  }
}

// Validated input never exceeds these; the check keeps an oversized string
// that slipped past validation from feeding a long match.
function withinBounds(peerId: string, path: string): boolean {
  return peerId.length <= MAX_SPIFFE_ID_BYTES &&
    path.length <= MAX_PATH_LENGTH;
}
