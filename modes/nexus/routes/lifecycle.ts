// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Key and data lifecycle routes (superuser, beyond upstream):
 * `POST /v1/operator/rotate` starts a new data-key term (and optionally
 * re-encrypts the older ones), `POST /v1/operator/rekey` replaces the root
 * key and its split, `POST /v1/operator/backup` streams a backup of the
 * store. Their facts for `status` come from here too.
 *
 * @module
 */
import { hasRole } from "../../../lib/spiffe/roles.ts";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import type { JsonValue } from "../../../lib/wire/json_bytes.ts";
import type { Logger } from "../../../lib/log.ts";
import type { NexusConfig } from "../config.ts";
import type { Keepers } from "../keepers.ts";
import { keyId } from "../key_id.ts";
import { rekey } from "../rekey.ts";
import type { RootKeyState } from "../root_key.ts";
import type { StoreMeta } from "../store/backend.ts";
import type { NexusStore } from "../store/open.ts";
import { backupStream } from "../backup/export.ts";
import { jsonResponse, readJsonObject } from "../http.ts";
import type { Route, RouteContext } from "../router.ts";

/** What the lifecycle routes need from nexus. */
export interface LifecycleDeps {
  /** The store. */
  readonly store: NexusStore;
  /** The root key in memory. */
  readonly state: RootKeyState;
  /** The configured keepers; undefined without keepers (memory backend). */
  readonly keepers: Keepers | undefined;
  /** The store meta as nexus knows it. */
  readonly meta: () => StoreMeta | undefined;
  /** Tells nexus the meta after a rekey. */
  readonly setMeta: (meta: StoreMeta) => void;
  /** The settings used. */
  readonly config: Pick<
    NexusConfig,
    "backend" | "shares" | "threshold" | "allowThresholdOne" | "rekeyTimeoutMs"
  >;
  /** Runs `task` after, and before, every other push to the keepers. */
  readonly exclusive: <T>(task: () => Promise<T>) => Promise<T>;
  /** Why this nexus may not rekey now (a replica not leading), if so. */
  readonly rekeyRefusal: () => string | undefined;
  /** The operational log. */
  readonly log: Logger;
}

function requireSuperuser(ctx: RouteContext): void {
  if (!hasRole(ctx.peerId, "superuser")) {
    throw new ApiError(
      ErrorCode.Unauthorized,
      `Operator route refused for ${ctx.peerId.uri}`,
    );
  }
}

function optionalCount(
  value: JsonValue | undefined,
  field: string,
): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new ApiError(
      ErrorCode.BadRequest,
      `${field} must be a whole number`,
    );
  }
  return value;
}

async function rotate(deps: LifecycleDeps, ctx: RouteContext) {
  requireSuperuser(ctx);
  const request = readJsonObject(ctx.body);
  const reencrypt = request.reencrypt ?? false;
  if (typeof reencrypt !== "boolean") {
    throw new ApiError(ErrorCode.BadRequest, "reencrypt must be true or false");
  }
  return jsonResponse(200, await deps.store.rotate(reencrypt));
}

async function rekeyRoute(
  deps: LifecycleDeps,
  ctx: RouteContext,
  running: { rekey: boolean },
) {
  requireSuperuser(ctx);
  const request = readJsonObject(ctx.body);
  const shares = optionalCount(request.shares, "shares") ??
    deps.keepers?.statuses.length ?? 0;
  const threshold = optionalCount(request.threshold, "threshold") ??
    deps.config.threshold;
  const keepers = deps.keepers;
  const meta = deps.meta();
  if (!keepers || !meta) {
    throw new ApiError(
      ErrorCode.BadRequest,
      "This nexus runs without keepers (memory backend): there is no root key to rekey",
    );
  }
  const refusal = deps.rekeyRefusal();
  if (refusal !== undefined) throw new ApiError(ErrorCode.Conflict, refusal);
  if (running.rekey) {
    throw new ApiError(ErrorCode.Conflict, "A rekey is already running");
  }
  running.rekey = true;
  try {
    const before = { shares: meta.shareCount, threshold: meta.threshold };
    const outcome = await deps.exclusive(() =>
      rekey({
        store: deps.store,
        state: deps.state,
        keepers,
        meta,
        shares,
        threshold,
        allowThresholdOne: deps.config.allowThresholdOne,
        timeoutMs: deps.config.rekeyTimeoutMs,
        log: deps.log,
      })
    );
    deps.setMeta(outcome.meta);
    return jsonResponse(200, {
      keyId: await keyId(outcome.meta.storeId, outcome.meta.keyCheck),
      shares: outcome.meta.shareCount,
      threshold: outcome.meta.threshold,
      previous: before,
      promoted: outcome.promoted,
      keepers: keepers.statuses,
    });
  } finally {
    running.rekey = false;
  }
}

function backup(deps: LifecycleDeps, ctx: RouteContext) {
  requireSuperuser(ctx);
  readJsonObject(ctx.body);
  if (deps.config.backend === "memory") {
    throw new ApiError(
      ErrorCode.BadRequest,
      "This nexus runs without keepers (memory backend): its root key lives only in this process, so no backup of it could ever be opened",
    );
  }
  const summary = { secrets: 0, policies: 0 };
  const log = deps.log;
  const started = performance.now();
  async function* logged() {
    try {
      yield* backupStream(deps.store, summary);
      log.info("Backup sent", {
        ...summary,
        ms: Math.round(performance.now() - started),
      });
    } catch (e) {
      log.warn("Backup failed; the connection was cut", {
        error: (e as Error).message,
      });
      throw e;
    }
  }
  return Promise.resolve({
    status: 200,
    headers: {
      "content-type": "application/octet-stream",
      "cache-control": "no-store",
    },
    stream: logged(),
  });
}

/**
 * What `status` shows about the keys: the root key's id, age and last
 * recovery export, the data-key terms and their counts, a re-encryption's
 * progress, and the configured split next to the store's.
 *
 * @param deps what the routes need
 * @returns fields to add to the status answer
 */
export async function lifecycleStatus(
  deps: LifecycleDeps,
): Promise<Record<string, unknown>> {
  const meta = deps.meta();
  const keys = deps.state.unlocked ? deps.store.keys.status() : undefined;
  return {
    rootKey: meta
      ? {
        id: await keyId(meta.storeId, meta.keyCheck),
        created: keys?.rootKeyCreated ?? null,
        recoveryExported: keys?.recoveryExported ?? null,
        rekeyPending: meta.pending !== undefined,
      }
      : null,
    configured: deps.config.backend === "memory"
      ? null
      : { shares: deps.config.shares, threshold: deps.config.threshold },
    dataKeys: keys
      ? {
        activeTerm: keys.activeTerm,
        terms: keys.terms,
        cipherEncryptions: keys.cipherEncryptions,
        maxEncryptions: keys.maxEncryptions,
        rotationPeriodMs: keys.rotationPeriodMs,
        reencrypt: keys.reencrypt,
      }
      : null,
  };
}

/**
 * The lifecycle routes, keyed as in a route table.
 *
 * @param deps what the routes need
 * @returns path -> route (default action)
 */
export function lifecycleRoutes(deps: LifecycleDeps): [string, Route][] {
  const running = { rekey: false };
  return [
    ["/v1/operator/rotate", {
      needsUnlock: true,
      handler: (ctx) => rotate(deps, ctx),
    }],
    ["/v1/operator/rekey", {
      needsUnlock: true,
      handler: (ctx) => rekeyRoute(deps, ctx, running),
    }],
    ["/v1/operator/backup", {
      needsUnlock: true,
      handler: (ctx) => backup(deps, ctx),
    }],
  ];
}
