// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Operator routes: export recovery shards (recover role), feed them back
 * one at a time (restore role), rehearse a restore without changing
 * anything (drill, restore role), status (pilot roles), push the shards to
 * the keepers now (superuser), check every stored row (superuser), accept a
 * store held as rolled back or failing its digest (restore role), and the
 * audit chain's anchor (superuser, for `spike pilot audit verify`). Beyond
 * upstream: drill, status, push, check, accept-rollback, audit-anchor.
 *
 * @module
 */
import { hasRole, type Role } from "../../../lib/spiffe/roles.ts";
import { zero } from "../../../lib/crypto/zero.ts";
import {
  type Shard,
  splitRootKey,
  verifyShard,
} from "../../../lib/shard/mod.ts";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import {
  JsonBytesError,
  JsonBytesWriter,
  type JsonValue,
  parseJsonBytes,
  takeShardArray,
} from "../../../lib/wire/json_bytes.ts";
import type { SpiffeId } from "../../../lib/spiffe/id.ts";
import type { StoreMeta } from "../store/backend.ts";
import type { Keepers } from "../keepers.ts";
import type { ReplicaView } from "../ha/presence.ts";
import type { PushResult } from "../keeper_sync.ts";
import type { RestoreSession } from "../restore.ts";
import type { RollbackGuard } from "../rollback_guard.ts";
import type { RootKeyState } from "../root_key.ts";
import type { CheckReport } from "../store/open.ts";
import type { AuditHead } from "../../../lib/audit/chain.ts";
import { checkKeepers, rebuildRootKey } from "../lifecycle.ts";
import { type JsonObject, jsonResponse, readJsonObject } from "../http.ts";
import type { Route, RouteContext } from "../router.ts";

/** What the operator routes need from nexus. */
export interface OperatorDeps {
  readonly state: RootKeyState;
  readonly meta: () => StoreMeta | undefined;
  readonly restore: RestoreSession;
  readonly keepers: Keepers | undefined;
  readonly backend: string;
  readonly allowThresholdOne: boolean;
  /**
   * Pushes every keeper its share now (after a restore, or asked by an
   * operator); undefined without keepers (memory backend).
   */
  readonly push: ((why: string) => Promise<PushResult>) | undefined;
  /**
   * Runs `task` serialized with every push to the keepers, so a recovery
   * export never splits a key a rekey is replacing.
   */
  readonly exclusive: <T>(task: () => Promise<T>) => Promise<T>;
  /**
   * Records that recovery shards were exported now; never fails the export
   * (a store that cannot record it logs why).
   */
  readonly recoveryExported: () => Promise<void>;
  /** More status fields: the keys' lifecycle (`routes/lifecycle.ts`). */
  readonly lifecycleStatus: () => Promise<Record<string, unknown>>;
  /** The replicas of a shared store (postgres backend). */
  readonly replicas?: (() => Promise<ReplicaView[]>) | undefined;
  /** Holds a store that was rolled back or fails its digest. */
  readonly guard: RollbackGuard;
  /** Checks every stored row and the digest. */
  readonly check: () => Promise<CheckReport>;
  /** The audit chain's newest anchor and the last line written. */
  readonly auditAnchor: () => {
    anchor: AuditHead | undefined;
    head: AuditHead | undefined;
  };
}

// Routes that need the root key but not a served store: they work while
// the store is held, so an operator can still act on it.
function requireKey(deps: OperatorDeps): void {
  if (!deps.state.unlocked) {
    throw new ApiError(ErrorCode.NotReady, "Nexus is locked: no root key yet");
  }
}

function requireRole(peer: SpiffeId, ...roles: Role[]): void {
  if (!roles.some((role) => hasRole(peer, role))) {
    throw new ApiError(
      ErrorCode.Unauthorized,
      `Operator route refused for ${peer.uri}`,
    );
  }
}

function requireMeta(deps: OperatorDeps): StoreMeta {
  const meta = deps.meta();
  if (deps.backend === "memory") {
    throw new ApiError(
      ErrorCode.BadRequest,
      "This nexus runs without keepers (memory backend), so it has no recovery shards",
    );
  }
  if (!meta) {
    throw new ApiError(
      ErrorCode.BadRequest,
      "This nexus has no root key yet: it is still creating its store",
    );
  }
  return meta;
}

function shardIndex(value: JsonValue | undefined, meta: StoreMeta): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 1 ||
    value > meta.shareCount
  ) {
    throw new ApiError(
      ErrorCode.BadRequest,
      `Shard id must be a whole number from 1 to ${meta.shareCount}`,
    );
  }
  return value;
}

/**
 * Parses a shard-bearing body and zeroes it. Numbers must be plain
 * integers, so no share value is ever converted through a string.
 */
function readShardRequest(body: Uint8Array): JsonObject {
  let value: JsonValue;
  try {
    value = parseJsonBytes(body, { plainIntegers: true });
  } catch (e) {
    throw new ApiError(
      ErrorCode.BadRequest,
      e instanceof JsonBytesError ? e.message : "Body must be JSON",
    );
  } finally {
    zero(body);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    wipeNumbers(value);
    throw new ApiError(ErrorCode.BadRequest, "Body must be a JSON object");
  }
  return value;
}

/**
 * Zeroes every array in a parsed body, wherever it sits: the share numbers
 * of a request that failed before its shard was taken stay nowhere.
 */
function wipeNumbers(value: JsonValue | undefined): void {
  if (value === null || typeof value !== "object") return;
  if (Array.isArray(value)) {
    for (const item of value) wipeNumbers(item);
    value.fill(0);
    return;
  }
  for (const item of Object.values(value)) wipeNumbers(item);
}

function readShard(value: JsonValue | undefined): Uint8Array {
  const shard = takeShardArray(value);
  if (!shard) {
    throw new ApiError(
      ErrorCode.BadRequest,
      "Shard must be an array of 32 integers from 0 to 255",
    );
  }
  return shard;
}

async function recover(deps: OperatorDeps, ctx: RouteContext) {
  requireRole(ctx.peerId, "recover");
  requireKey(deps);
  readJsonObject(ctx.body);
  const body = await deps.exclusive(() => {
    const meta = requireMeta(deps);
    return deps.state.withKey(async (key) => {
      const shards = await splitRootKey(key, meta.shareCount, meta.threshold, {
        allowThresholdOne: deps.allowThresholdOne,
      });
      const writer = new JsonBytesWriter().raw('{"shards":{');
      shards.forEach((s, i) => {
        writer.raw(`${i > 0 ? "," : ""}"${s.index}":`).byteArray(s.value);
        zero(s.value);
      });
      return writer.raw("}}").finish();
    });
  });
  await deps.recoveryExported();
  return jsonResponse(200, body);
}

async function restore(deps: OperatorDeps, ctx: RouteContext) {
  requireRole(ctx.peerId, "restore");
  const meta = requireMeta(deps);
  if (deps.state.unlocked) {
    zero(ctx.body);
    throw new ApiError(
      ErrorCode.Conflict,
      "Restore refused: nexus already has its root key",
    );
  }
  const request = readShardRequest(ctx.body);
  try {
    const index = shardIndex(request.id, meta);
    const value = readShard(request.shard);
    const status = await deps.restore.submit({ index, value });
    // Pushed before answering, so the keepers hold their shards (or the
    // status says which do not) when the operator reads the answer.
    if (status.restored) await deps.push?.("restore").catch(() => {});
    return jsonResponse(200, status);
  } finally {
    wipeNumbers(request);
  }
}

async function drill(deps: OperatorDeps, ctx: RouteContext) {
  requireRole(ctx.peerId, "restore");
  const meta = requireMeta(deps);
  const request = readShardRequest(ctx.body);
  const valid: number[] = [];
  const invalid: number[] = [];
  const verified = new Map<number, Shard>();
  try {
    if (!Array.isArray(request.shards) || request.shards.length > 255) {
      throw new ApiError(ErrorCode.BadRequest, "Shards must be a list");
    }
    for (const item of request.shards) {
      if (item === null || typeof item !== "object" || Array.isArray(item)) {
        throw new ApiError(ErrorCode.BadRequest, "Each shard is {id, shard}");
      }
      const index = shardIndex(item.id, meta);
      const shard = { index, value: readShard(item.shard) };
      let kept = false;
      try {
        if (
          !verified.has(index) &&
          await verifyShard(meta.storeId, shard, meta.commitments)
        ) {
          verified.set(index, shard);
          kept = true;
          valid.push(index);
        } else {
          invalid.push(index);
        }
      } finally {
        if (!kept) zero(shard.value);
      }
    }
    const rebuilt = await rebuildRootKey(
      [...verified.values()],
      meta,
      deps.allowThresholdOne,
    );
    zero(rebuilt?.key);
    return jsonResponse(200, {
      valid,
      invalid,
      wouldRestore: rebuilt !== undefined,
      threshold: meta.threshold,
    });
  } finally {
    wipeNumbers(request);
    for (const s of verified.values()) zero(s.value);
  }
}

async function status(deps: OperatorDeps, ctx: RouteContext) {
  requireRole(ctx.peerId, "superuser", "recover", "restore");
  const request = readJsonObject(ctx.body);
  const meta = deps.meta();
  // `probe` asks the keepers now (bounded by the keeper timeout) instead of
  // reporting them as of the last push or recovery attempt, which may be
  // minutes old; polling callers leave it out and answer at once.
  if (request.probe === true && deps.keepers && meta) {
    await checkKeepers(deps.keepers, meta);
    // A keeper that restarted between two pushes answers without its
    // share: give it back now rather than at the next push. (Keepers
    // listed beyond the store's split wait for a rekey.)
    if (
      deps.state.unlocked &&
      deps.keepers.statuses.slice(0, meta.shareCount).some((k) =>
        k.reachable && k.holdsShard === false
      )
    ) {
      await deps.push?.("status").catch(() => {});
    }
  }
  const collected = deps.restore.collected;
  const integrity = await deps.guard.report();
  return jsonResponse(200, {
    // "held": the root key is known, but the store is not served.
    state: !deps.state.unlocked
      ? "locked"
      : deps.guard.serving
      ? "unlocked"
      : "held",
    backend: deps.backend,
    threshold: meta?.threshold ?? null,
    shares: meta?.shareCount ?? null,
    restore: {
      collected,
      remaining: meta ? Math.max(meta.threshold - collected, 0) : null,
    },
    keepers: deps.keepers?.statuses ?? [],
    integrity: integrity ?? null,
    ...await deps.lifecycleStatus(),
    ...(deps.replicas ? await replicaStatus(deps.replicas) : {}),
  });
}

// The replicas the database lists, and which one leads the push loop.
async function replicaStatus(list: () => Promise<ReplicaView[]>) {
  try {
    const replicas = await list();
    return {
      replicas,
      pushLeader: replicas.find((r) => r.pushLeader)?.id ?? null,
    };
  } catch {
    return { replicas: null, pushLeader: null, database: "unreachable" };
  }
}

async function push(deps: OperatorDeps, ctx: RouteContext) {
  requireRole(ctx.peerId, "superuser");
  readJsonObject(ctx.body);
  requireKey(deps);
  if (!deps.push) {
    throw new ApiError(
      ErrorCode.BadRequest,
      "This nexus runs without keepers (memory backend): there is nothing to push",
    );
  }
  const result = await deps.push("operator");
  return jsonResponse(200, {
    stored: result.stored,
    keepers: deps.keepers?.statuses ?? [],
  });
}

async function check(deps: OperatorDeps, ctx: RouteContext) {
  requireRole(ctx.peerId, "superuser");
  readJsonObject(ctx.body);
  requireKey(deps);
  return jsonResponse(200, await deps.check());
}

function headJson(head: AuditHead | undefined) {
  return head ? { seq: head.seq, hash: head.hash.toHex() } : null;
}

function auditAnchor(deps: OperatorDeps, ctx: RouteContext) {
  requireRole(ctx.peerId, "superuser");
  readJsonObject(ctx.body);
  requireKey(deps);
  const { anchor, head } = deps.auditAnchor();
  return Promise.resolve(
    jsonResponse(200, { anchor: headJson(anchor), head: headJson(head) }),
  );
}

async function acceptRollback(deps: OperatorDeps, ctx: RouteContext) {
  requireRole(ctx.peerId, "restore");
  const request = readJsonObject(ctx.body);
  requireKey(deps);
  const generation = request.generation;
  if (
    typeof generation !== "number" || !Number.isSafeInteger(generation) ||
    generation < 0
  ) {
    throw new ApiError(
      ErrorCode.BadRequest,
      "Generation must be the store's generation as status shows it, a whole number from 0",
    );
  }
  const accepted = await deps.guard.accept(generation);
  // The keepers take the accepted store's checkpoint at once.
  await deps.push?.("accept-rollback").catch(() => {});
  return jsonResponse(200, accepted);
}

/**
 * The operator routes, keyed as in a route table.
 *
 * @param deps what the routes need
 * @returns path -> route (default action)
 */
export function operatorRoutes(deps: OperatorDeps): [string, Route][] {
  return [
    ["/v1/operator/recover", {
      needsUnlock: false,
      handler: (ctx) => recover(deps, ctx),
    }],
    ["/v1/operator/restore", {
      needsUnlock: false,
      handler: (ctx) => restore(deps, ctx),
    }],
    ["/v1/operator/drill", {
      needsUnlock: false,
      handler: (ctx) => drill(deps, ctx),
    }],
    ["/v1/operator/status", {
      needsUnlock: false,
      handler: (ctx) => status(deps, ctx),
    }],
    ["/v1/operator/push", {
      needsUnlock: false,
      handler: (ctx) => push(deps, ctx),
    }],
    ["/v1/operator/check", {
      needsUnlock: false,
      handler: (ctx) => check(deps, ctx),
    }],
    ["/v1/operator/accept-rollback", {
      needsUnlock: false,
      handler: (ctx) => acceptRollback(deps, ctx),
    }],
    ["/v1/operator/audit-anchor", {
      needsUnlock: false,
      handler: (ctx) => auditAnchor(deps, ctx),
    }],
  ];
}
