// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Secret routes (`/v1/store/secrets` and its metadata route): put, get,
 * delete, undelete, list and metadata, with upstream's request and
 * response shapes, and pages for list (`lib/wire/list_page.ts`). Each
 * request is parsed, validated, authorized, then run.
 *
 * @module
 */
import type { MtlsResponse } from "../../../lib/mtls/server.ts";
import {
  validateCas,
  validateOptionalVersion,
  validateSecretPath,
  validateSecretValues,
  validateVersions,
} from "../../../lib/wire/validate.ts";
import { validateListPage } from "../../../lib/wire/list_page.ts";
import { secretListGrant } from "../policy/authorize.ts";
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

/** What the secret routes need from nexus. */
export interface SecretRouteDeps {
  /** The store; its secret service is used once unlocked. */
  readonly store: NexusStore;
  /** The policies. */
  readonly engine: PolicyEngine;
}

/** The secrets route path. */
export const SECRETS_PATH = "/v1/store/secrets";
/** The secret metadata route path. */
export const SECRET_METADATA_PATH = "/v1/store/secrets/metadata";

const encoder = new TextEncoder();

// Reads the body and the path field, and names the path in the audit line
// once it is known to be a valid path.
function pathRequest(
  ctx: RouteContext,
  options: { carriesSecrets?: boolean } = {},
): [JsonObject, string] {
  const request = readJsonObject(ctx.body, options);
  const path = validInput(() => validateSecretPath(request.path));
  ctx.resource = path;
  return [request, path];
}

async function put(deps: SecretRouteDeps, ctx: RouteContext) {
  const [request, path] = pathRequest(ctx, { carriesSecrets: true });
  const values = validInput(() => validateSecretValues(request.values));
  const cas = validInput(() => validateCas(request.cas));
  requireAllowed(ctx.peerId, "secret.put", path, deps.engine);
  await deps.store.secrets.put(path, values, cas === undefined ? {} : { cas });
  return jsonResponse(200, {});
}

async function get(deps: SecretRouteDeps, ctx: RouteContext) {
  const [request, path] = pathRequest(ctx);
  const version = validInput(() => validateOptionalVersion(request.version));
  requireAllowed(ctx.peerId, "secret.get", path, deps.engine);
  const data = await deps.store.secrets.get(path, version);
  // Bytes rather than a string: the server zeroes a byte body once sent.
  return jsonResponse(200, encoder.encode(JSON.stringify({ data })));
}

async function remove(deps: SecretRouteDeps, ctx: RouteContext) {
  const [request, path] = pathRequest(ctx);
  const versions = validInput(() => validateVersions(request.versions));
  requireAllowed(ctx.peerId, "secret.delete", path, deps.engine);
  await deps.store.secrets.delete(path, versions);
  return jsonResponse(200, {});
}

async function undelete(deps: SecretRouteDeps, ctx: RouteContext) {
  const [request, path] = pathRequest(ctx);
  const versions = validInput(() => validateVersions(request.versions));
  requireAllowed(ctx.peerId, "secret.undelete", path, deps.engine);
  await deps.store.secrets.undelete(path, versions);
  return jsonResponse(200, {});
}

// Upstream's answer without page fields: every path the caller may list.
// With them, one keyset page and the cursor of the next.
async function list(deps: SecretRouteDeps, ctx: RouteContext) {
  const request = readJsonObject(ctx.body);
  const page = validInput(() => validateListPage(request));
  requireAllowed(ctx.peerId, "secret.list", undefined, deps.engine);
  const { keys, next } = await deps.store.secrets.list(
    page ?? { prefix: "", after: "", limit: undefined },
    secretListGrant(ctx.peerId, deps.engine),
  );
  return jsonResponse(200, next === undefined ? { keys } : { keys, next });
}

async function metadata(deps: SecretRouteDeps, ctx: RouteContext) {
  const [request, path] = pathRequest(ctx);
  const version = validInput(() => validateOptionalVersion(request.version));
  requireAllowed(ctx.peerId, "secret.metadata", path, deps.engine);
  return jsonResponse(200, await deps.store.secrets.metadata(path, version));
}

/**
 * The secret routes, keyed as in a route table.
 *
 * @param deps the store and the policies
 * @returns route key -> route; every route needs the root key
 */
export function secretRoutes(deps: SecretRouteDeps): [string, Route][] {
  const route = (
    handler: (
      deps: SecretRouteDeps,
      ctx: RouteContext,
    ) => Promise<MtlsResponse>,
  ): Route => ({ needsUnlock: true, handler: (ctx) => handler(deps, ctx) });
  return [
    [routeKey(SECRETS_PATH), route(put)],
    [routeKey(SECRETS_PATH, "get"), route(get)],
    [routeKey(SECRETS_PATH, "delete"), route(remove)],
    [routeKey(SECRETS_PATH, "undelete"), route(undelete)],
    [routeKey(SECRETS_PATH, "list"), route(list)],
    [routeKey(SECRET_METADATA_PATH, "get"), route(metadata)],
  ];
}
