// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The authorization decision for every nexus operation (upstream's
 * predicate table), in one place: roles first, then policies.
 *
 * @module
 */
import {
  parseSpiffeId,
  type SpiffeId,
  SpiffeIdError,
} from "../../../lib/spiffe/id.ts";
import { hasRole } from "../../../lib/spiffe/roles.ts";
import { isReservedPath } from "../../../lib/wire/validate.ts";
import type { ListGrant, Permission, PolicyEngine } from "./engine.ts";

/** An operation a nexus route performs on behalf of a caller. */
export type Operation =
  | "secret.put"
  | "secret.get"
  | "secret.metadata"
  | "secret.delete"
  | "secret.undelete"
  | "secret.list"
  | "policy.put"
  | "policy.get"
  | "policy.delete"
  | "policy.list"
  | "cipher.encrypt"
  | "cipher.decrypt"
  | "operator.recover"
  | "operator.restore"
  | "bootstrap.verify";

/** The reserved paths that policies name to grant API-level rights. */
export const SYSTEM_PATHS = {
  /** `write`: upsert/delete policies; `read`: get; `list`: list. */
  acl: "spike/system/acl",
  /** `list`: list secret paths (then filtered per path). */
  secretList: "spike/system/secret",
  /** `execute`: the cipher API. */
  cipher: "spike/system/cipher/exec",
} as const;

type Need =
  | { readonly kind: "secret"; readonly permission: Permission }
  | {
    readonly kind: "system";
    readonly path: string;
    readonly permission: Permission;
  }
  | {
    readonly kind: "role";
    readonly role: "recover" | "restore" | "bootstrap";
  };

const NEEDS: Readonly<Record<Operation, Need>> = {
  "secret.put": { kind: "secret", permission: "write" },
  "secret.get": { kind: "secret", permission: "read" },
  "secret.metadata": { kind: "secret", permission: "read" },
  "secret.delete": { kind: "secret", permission: "write" },
  "secret.undelete": { kind: "secret", permission: "write" },
  "secret.list": {
    kind: "system",
    path: SYSTEM_PATHS.secretList,
    permission: "list",
  },
  "policy.put": { kind: "system", path: SYSTEM_PATHS.acl, permission: "write" },
  "policy.get": { kind: "system", path: SYSTEM_PATHS.acl, permission: "read" },
  "policy.delete": {
    kind: "system",
    path: SYSTEM_PATHS.acl,
    permission: "write",
  },
  "policy.list": { kind: "system", path: SYSTEM_PATHS.acl, permission: "list" },
  "cipher.encrypt": {
    kind: "system",
    path: SYSTEM_PATHS.cipher,
    permission: "execute",
  },
  "cipher.decrypt": {
    kind: "system",
    path: SYSTEM_PATHS.cipher,
    permission: "execute",
  },
  "operator.recover": { kind: "role", role: "recover" },
  "operator.restore": { kind: "role", role: "restore" },
  "bootstrap.verify": { kind: "role", role: "bootstrap" },
};

/** The role that decides what a caller may do, or none of them. */
type Standing = "recover" | "restore" | "bootstrap" | "lite" | "superuser";

// In the order authorize tests them: the first that matches decides.
const STANDINGS: readonly Standing[] = [
  "recover",
  "restore",
  "bootstrap",
  "lite",
  "superuser",
];

// A caller's standing per verified ID: the mTLS server hands every request
// on a connection the same SpiffeId object, so the trust roots (read from
// the environment, two or three variables per role) are looked up once per
// connection instead of five roles' worth on every request.
const standings = new WeakMap<SpiffeId, Standing | null>();

function standingOf(id: SpiffeId): Standing | null {
  let standing = standings.get(id);
  if (standing === undefined) {
    standing = STANDINGS.find((role) => hasRole(id, role)) ?? null;
    standings.set(id, standing);
  }
  return standing;
}

function toId(peerId: SpiffeId | string): SpiffeId | undefined {
  if (typeof peerId !== "string") return peerId;
  try {
    return parseSpiffeId(peerId);
  } catch (e) {
    if (e instanceof SpiffeIdError) return undefined;
    throw e;
  }
}

/**
 * Decides whether a caller may perform an operation, in this order:
 *
 * 1. Recover, restore and bootstrap identities pass their own operation and
 *    nothing else, whatever policies say; nobody else passes those three
 *    (not even the superuser; no policy can grant them).
 * 2. Lite workloads pass the cipher operations and nothing else, even when
 *    a policy would match.
 * 3. The superuser passes every secret, policy and cipher operation.
 * 4. Everyone else needs a policy: `write` on the secret path for
 *    put/delete/undelete, `read` for get/metadata; `list` on
 *    `spike/system/secret` for secret list (whose result the route then
 *    narrows with {@linkcode secretListGrant}); `write`/`read`/`list`
 *    on `spike/system/acl` for policy put+delete/get/list; `execute` on
 *    `spike/system/cipher/exec` for the cipher. Only a policy whose path
 *    pattern names `spike/system` literally reaches these reserved paths:
 *    a `.*` policy grants secrets, never these rights.
 *
 * Secret operations never reach a path at or under `spike/system`, not even
 * for the superuser: validation refuses such paths (400) before this runs,
 * and the check here keeps a missed validation from becoming a grant on a
 * reserved path. Nexus and keeper identities get nothing by role.
 *
 * @param peerId the caller's SPIFFE ID (an invalid string is denied)
 * @param op the operation
 * @param path the secret path for secret operations other than list;
 *   ignored otherwise
 * @param engine the policies
 * @returns true when allowed
 * @throws {ConfigError} when the trust root variables are invalid
 */
export function authorize(
  peerId: SpiffeId | string,
  op: Operation,
  path: string | undefined,
  engine: PolicyEngine,
): boolean {
  const id = toId(peerId);
  if (id === undefined) return false;
  const need = NEEDS[op];
  const standing = standingOf(id);
  if (
    standing === "recover" || standing === "restore" ||
    standing === "bootstrap"
  ) {
    return need.kind === "role" && need.role === standing;
  }
  if (need.kind === "role") return false;
  if (standing === "lite") {
    return op === "cipher.encrypt" || op === "cipher.decrypt";
  }
  if (need.kind === "secret") {
    if (path === undefined || isReservedPath(path)) return false;
    return standing === "superuser" ||
      engine.allows(id.uri, path, [need.permission]);
  }
  return standing === "superuser" ||
    engine.allows(id.uri, need.path, [need.permission]);
}

/**
 * What a caller sees of the secret list: every path for the superuser
 * (undefined: no narrowing); for a caller that passes `secret.list` by
 * policy, the paths on which a policy grants `list`; nothing for anyone
 * else.
 *
 * @param peerId the caller's SPIFFE ID
 * @param engine the policies
 * @returns undefined for everything, else the caller's grant
 * @throws {ConfigError} when the trust root variables are invalid
 */
export function secretListGrant(
  peerId: SpiffeId | string,
  engine: PolicyEngine,
): ListGrant | undefined {
  const id = toId(peerId);
  if (id === undefined || !authorize(id, "secret.list", undefined, engine)) {
    return NOTHING;
  }
  if (standingOf(id) === "superuser") return undefined;
  return engine.listGrant(id.uri);
}

const NOTHING: ListGrant = { prefixes: [], allows: () => false };
