// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Policy routes (`/v1/acl/policy`): upsert, get, delete and list, with
 * upstream's shapes (the name travels in `id` for get/delete; the get
 * answer carries upstream's `spiffiedPattern` spelling beside the correct
 * one). Unlike upstream, an unknown policy is 404 and an invalid or unsafe
 * pattern is 400. Beyond upstream, `?action=create` stores a policy only
 * when its name is free (409 otherwise), with the upsert's permission, so
 * `pilot policy create` needs no list permission for a client-side check. Every write goes to the store first, then to the engine,
 * one write per name at a time, so the engine never grants what the store
 * does not hold. List takes the page fields of `lib/wire/list_page.ts`.
 *
 * @module
 */
import type { MtlsResponse } from "../../../lib/mtls/server.ts";
import type { JsonValue } from "../../../lib/wire/json_bytes.ts";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import {
  validatePathPattern,
  validatePermissions,
  validatePolicyName,
  validateSpiffeIdPattern,
  ValidationError,
} from "../../../lib/wire/validate.ts";
import { validateListPage } from "../../../lib/wire/list_page.ts";
import { KeyedMutex } from "../secrets/path_lock.ts";
import type { PolicyEngine } from "../policy/engine.ts";
import type { NexusStore } from "../store/open.ts";
import {
  type JsonObject,
  jsonResponse,
  readJsonObject,
  requireAllowed,
  validInput,
} from "../http.ts";
import { type Route, type RouteContext, routeKey } from "../router.ts";

/** What the policy routes need from nexus. */
export interface PolicyRouteDeps {
  /** The store; its policy store is used once unlocked. */
  readonly store: NexusStore;
  /** The compiled policies, kept in step with the store. */
  readonly engine: PolicyEngine;
}

/** The policy route path. */
export const POLICY_PATH = "/v1/acl/policy";

function isAbsent(value: JsonValue | undefined): boolean {
  return value === undefined || value === null;
}

// Upstream sends the policy name in `id` (issue #250); `name` is accepted
// too. When both are given they must agree.
function nameOf(request: JsonObject): string {
  const { id, name } = request;
  if (isAbsent(id) && isAbsent(name)) {
    throw new ValidationError("id", "Policy name must be given in id");
  }
  if (!isAbsent(id) && !isAbsent(name) && id !== name) {
    throw new ValidationError("id", "Policy id and name must be the same");
  }
  return isAbsent(id)
    ? validatePolicyName(name, "name")
    : validatePolicyName(id, "id");
}

function optionalFilter(value: JsonValue | undefined, field: string): string {
  if (isAbsent(value)) return "";
  if (typeof value !== "string") {
    throw new ValidationError(field, "List filters must be strings");
  }
  return value;
}

async function upsert(
  deps: PolicyRouteDeps,
  locks: KeyedMutex,
  ctx: RouteContext,
  mode: "upsert" | "create",
) {
  const request = readJsonObject(ctx.body);
  const name = validInput(() => validatePolicyName(request.name));
  ctx.resource = name;
  const input = validInput(() => ({
    name,
    spiffeIdPattern: validateSpiffeIdPattern(request.spiffeidPattern),
    pathPattern: validatePathPattern(request.pathPattern),
    permissions: validatePermissions(request.permissions),
  }));
  requireAllowed(ctx.peerId, "policy.put", undefined, deps.engine);
  await locks.run(name, async () => {
    // Checked under the name's lock, so two creates of one name cannot both
    // succeed on this nexus.
    if (mode === "create" && await deps.store.policies.getPolicy(name)) {
      throw new ApiError(
        ErrorCode.Conflict,
        `Policy "${name}" already exists`,
      );
    }
    const record = await deps.store.policies.putPolicy(input);
    deps.engine.upsert(record);
  });
  return jsonResponse(200, {});
}

async function get(deps: PolicyRouteDeps, ctx: RouteContext) {
  const request = readJsonObject(ctx.body);
  const name = validInput(() => nameOf(request));
  ctx.resource = name;
  requireAllowed(ctx.peerId, "policy.get", undefined, deps.engine);
  const record = await deps.store.policies.getPolicy(name);
  if (!record) {
    throw new ApiError(ErrorCode.NotFound, `Policy "${name}" not found`);
  }
  return jsonResponse(200, {
    id: "",
    name: record.name,
    spiffeidPattern: record.spiffeIdPattern,
    spiffiedPattern: record.spiffeIdPattern,
    pathPattern: record.pathPattern,
    permissions: record.permissions,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  });
}

async function remove(
  deps: PolicyRouteDeps,
  locks: KeyedMutex,
  ctx: RouteContext,
) {
  const request = readJsonObject(ctx.body);
  const name = validInput(() => nameOf(request));
  ctx.resource = name;
  requireAllowed(ctx.peerId, "policy.delete", undefined, deps.engine);
  const deleted = await locks.run(name, async () => {
    const found = await deps.store.policies.deletePolicy(name);
    // Dropped from the engine even when the store had no row, so a held
    // grant can never outlive its policy.
    deps.engine.remove(name);
    return found;
  });
  if (!deleted) {
    throw new ApiError(ErrorCode.NotFound, `Policy "${name}" not found`);
  }
  return jsonResponse(200, {});
}

async function list(deps: PolicyRouteDeps, ctx: RouteContext) {
  const request = readJsonObject(ctx.body);
  const [spiffeIdFilter, pathFilter, page] = validInput(() =>
    [
      optionalFilter(request.spiffeidPattern, "spiffeidPattern"),
      optionalFilter(request.pathPattern, "pathPattern"),
      validateListPage(request),
    ] as const
  );
  requireAllowed(ctx.peerId, "policy.list", undefined, deps.engine);
  // Exact string filters, as upstream: the SPIFFE ID filter wins when both
  // are given.
  const { keys, next } = await deps.store.policies.listNames(
    page ?? { prefix: "", after: "", limit: undefined },
    spiffeIdFilter !== ""
      ? { spiffeIdPattern: spiffeIdFilter }
      : pathFilter !== ""
      ? { pathPattern: pathFilter }
      : {},
  );
  const policies = keys.map((name) => ({ id: "", name }));
  return jsonResponse(
    200,
    next === undefined ? { policies } : { policies, next },
  );
}

/**
 * The policy routes, keyed as in a route table.
 *
 * @param deps the store and the engine
 * @returns route key -> route; every route needs the root key
 */
export function policyRoutes(deps: PolicyRouteDeps): [string, Route][] {
  const locks = new KeyedMutex();
  const route = (
    handler: (ctx: RouteContext) => Promise<MtlsResponse>,
  ): Route => ({ needsUnlock: true, handler });
  return [
    [
      routeKey(POLICY_PATH),
      route((ctx) => upsert(deps, locks, ctx, "upsert")),
    ],
    [
      routeKey(POLICY_PATH, "create"),
      route((ctx) => upsert(deps, locks, ctx, "create")),
    ],
    [routeKey(POLICY_PATH, "get"), route((ctx) => get(deps, ctx))],
    [routeKey(POLICY_PATH, "delete"), route((ctx) => remove(deps, locks, ctx))],
    [routeKey(POLICY_PATH, "list"), route((ctx) => list(deps, ctx))],
  ];
}
