// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Request dispatch: POST only, the route table keyed by path and
 * `?action=`, the 503 gate while nexus is locked, mapping of errors to
 * bodies with the code (and for 400 the reason), and one audit line per
 * request.
 *
 * @module
 */
import type { MtlsRequest, MtlsResponse } from "../../lib/mtls/server.ts";
import type { SpiffeId } from "../../lib/spiffe/id.ts";
import { ApiError, ErrorCode } from "../../lib/wire/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { zero } from "../../lib/crypto/zero.ts";
import { type AuditLog, newTrailId } from "./audit.ts";
import { errorResponse } from "./http.ts";

/** What a route handler gets. */
export interface RouteContext {
  /** The caller's verified SPIFFE ID. */
  readonly peerId: SpiffeId;
  /** The raw body; routes that read shards zero it. */
  readonly body: Uint8Array<ArrayBuffer>;
  /** The request content type. */
  readonly contentType: string;
  /** Set by the handler: the secret path or policy name, for the audit line. */
  resource: string | null;
}

/** A route: its handler and whether it needs the root key. */
export interface Route {
  /** Handles the request; throws ApiError for refusals. */
  readonly handler: (ctx: RouteContext) => Promise<MtlsResponse>;
  /** Whether the route answers 503 while nexus is locked. */
  readonly needsUnlock: boolean;
}

/** Routes keyed by `<path>?<action>` (empty action for the default). */
export type RouteTable = ReadonlyMap<string, Route>;

/**
 * The key of a route in a {@linkcode RouteTable}.
 *
 * @param path the URL path
 * @param action the `?action=` value, "" for the default action
 * @returns the key
 */
export function routeKey(path: string, action = ""): string {
  return `${path}?${action}`;
}

function outcomeOf(status: number): string {
  if (status < 400) return "success";
  if (status === 401) return "denied";
  if (status < 500) return "refused";
  return "error";
}

/**
 * Builds the nexus request handler.
 *
 * @param options the route table, lock state, audit log and logger
 * @returns the handler for the mTLS server
 */
export function createDispatcher(options: {
  routes: RouteTable;
  isUnlocked: () => boolean;
  audit: AuditLog;
  log: Logger;
}): (req: MtlsRequest) => Promise<MtlsResponse> {
  const { routes, isUnlocked, audit, log } = options;
  return async (req) => {
    const started = performance.now();
    const trail = newTrailId();
    const ctx: RouteContext = {
      peerId: req.peerId,
      body: req.body,
      contentType: req.contentType,
      resource: null,
    };
    let response: MtlsResponse;
    let err: string | null = null;
    const route = routes.get(routeKey(req.path, req.action));
    if (req.method !== "POST") {
      err = ErrorCode.MethodNotAllowed;
      response = errorResponse(ErrorCode.MethodNotAllowed);
    } else if (!route) {
      err = ErrorCode.BadRequest;
      response = errorResponse(
        ErrorCode.BadRequest,
        "No route for this path and action",
      );
    } else if (route.needsUnlock && !isUnlocked()) {
      err = ErrorCode.NotReady;
      response = errorResponse(ErrorCode.NotReady);
    } else {
      try {
        response = await route.handler(ctx);
      } catch (e) {
        if (e instanceof ApiError) {
          err = e.code;
          response = errorResponse(e.code, e.message);
          // Altered stored data is the operator's business at once; the
          // client learns only the code.
          (e.code === ErrorCode.Integrity ? log.warn : log.info)(
            e.code === ErrorCode.Integrity
              ? "Stored data failed its integrity check"
              : "Request refused",
            { trail, code: e.code, reason: e.message },
          );
        } else {
          err = ErrorCode.Internal;
          response = errorResponse(ErrorCode.Internal);
          log.error("Request failed", {
            trail,
            error: e instanceof Error ? e.name : "unknown",
          });
        }
      }
    }
    // Answered only once the line is written: an unwritable audit log
    // fails the request (500), and no answer ever goes out unaudited.
    try {
      await audit.write({
        trail,
        caller: req.peerId.uri,
        route: req.path,
        action: req.action === "" ? "default" : req.action,
        resource: ctx.resource,
        outcome: outcomeOf(response.status),
        status: response.status,
        err,
        durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      });
    } catch (e) {
      if (response.body instanceof Uint8Array) zero(response.body);
      throw e;
    }
    return response;
  };
}
