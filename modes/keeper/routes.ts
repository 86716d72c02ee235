// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The keeper's routes, wire-compatible with upstream SPIKE:
 * `POST /v1/store/contribute` stores the shard, `POST /v1/store/shard`
 * returns it. The optional `index` field is ours; upstream ignores it.
 *
 * Beyond upstream, for a rekey (two phases, see `modes/nexus/rekey.ts`):
 * `POST /v1/store/contribute?action=pending` stores the shard of the new
 * root key beside the current one; a plain contribute later makes a shard
 * current and drops the pending one; `?action=forget` drops both (a keeper
 * that left the split). The shard answer carries `pending` when one is
 * held. Bodies are JSON objects of named fields, unknown fields ignored, so
 * later fields (a checkpoint) can ride along; an upstream keeper refuses
 * the actions (an unknown route), so a rekey never overwrites its shard.
 *
 * @module
 */
import type { MtlsRequest, MtlsResponse } from "../../lib/mtls/server.ts";
import { hasRole } from "../../lib/spiffe/roles.ts";
import { isAllZero, zero } from "../../lib/crypto/zero.ts";
import {
  JsonBytesError,
  JsonBytesWriter,
  parseJsonBytes,
  takeShardArray,
} from "../../lib/wire/json_bytes.ts";
import {
  errorBody,
  ErrorCode,
  type ErrorCodeValue,
  STATUS_OF,
} from "../../lib/wire/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { ShardSlot } from "./shard_slot.ts";

function json(status: number, body: string): MtlsResponse {
  return { status, headers: { "content-type": "application/json" }, body };
}

function fail(code: ErrorCodeValue, reason?: string): MtlsResponse {
  return json(STATUS_OF[code], JSON.stringify(errorBody(code, reason)));
}

const SHARD_RULE =
  'Body must be {"shard": [32 integers from 0 to 255, not all 0], "index": 0 to 255}';

/**
 * Builds the keeper's request handler over its shard slot.
 *
 * @param slot the shard slot
 * @param log the operational log
 * @param allowBootstrap whether `spike/bootstrap` identities may store a
 *   shard too (`SPIKE_KEEPER_ALLOW_BOOTSTRAP`); else only nexus may
 * @returns the handler for the mTLS server
 */
export function keeperHandler(
  slot: ShardSlot,
  log: Logger,
  allowBootstrap = false,
): (req: MtlsRequest) => Promise<MtlsResponse> {
  const contribute = (
    req: MtlsRequest,
    store: (shard: Uint8Array, index: number) => void,
    what: string,
  ): MtlsResponse => {
    if (
      !hasRole(req.peerId, "nexus") &&
      !(allowBootstrap && hasRole(req.peerId, "bootstrap"))
    ) {
      return fail(ErrorCode.Unauthorized);
    }
    let shard: Uint8Array | undefined;
    try {
      const body = parseJsonBytes(req.body, { plainIntegers: true });
      if (body === null || typeof body !== "object" || Array.isArray(body)) {
        return fail(ErrorCode.BadRequest, SHARD_RULE);
      }
      shard = takeShardArray(body.shard);
      const index = body.index ?? 0;
      if (
        !shard || isAllZero(shard) || typeof index !== "number" ||
        !Number.isInteger(index) || index < 0 || index > 255
      ) {
        return fail(ErrorCode.BadRequest, SHARD_RULE);
      }
      store(shard, index);
      log.info(what, { peer: req.peerId.uri, index });
      return json(200, "{}");
    } catch (e) {
      // The parser's messages name a byte offset, never the input.
      return fail(
        ErrorCode.BadRequest,
        e instanceof JsonBytesError ? e.message : SHARD_RULE,
      );
    } finally {
      zero(shard, req.body);
    }
  };

  const forget = (req: MtlsRequest): MtlsResponse => {
    if (!hasRole(req.peerId, "nexus")) return fail(ErrorCode.Unauthorized);
    try {
      parseJsonBytes(req.body);
    } catch (e) {
      return fail(
        ErrorCode.BadRequest,
        e instanceof JsonBytesError ? e.message : "Body must be JSON",
      );
    }
    slot.clear();
    log.info("Shards forgotten", { peer: req.peerId.uri });
    return json(200, "{}");
  };

  const shard = (req: MtlsRequest): MtlsResponse => {
    if (!hasRole(req.peerId, "nexus")) return fail(ErrorCode.Unauthorized);
    try {
      parseJsonBytes(req.body);
    } catch (e) {
      return fail(
        ErrorCode.BadRequest,
        e instanceof JsonBytesError ? e.message : "Body must be JSON",
      );
    }
    const { current, pending } = slot.get();
    if (!current && !pending) return fail(ErrorCode.NotFound);
    const writer = new JsonBytesWriter().raw("{");
    if (current) {
      writer.raw('"shard":').byteArray(current.value)
        .raw(`,"index":${current.index}`);
    }
    if (pending) {
      writer.raw(`${current ? "," : ""}"pending":{"shard":`)
        .byteArray(pending.value).raw(`,"index":${pending.index}}`);
    }
    const body = writer.raw("}").finish();
    zero(current?.value, pending?.value);
    return {
      status: 200,
      headers: { "content-type": "application/json" },
      body,
    };
  };

  return (req) => {
    if (req.method !== "POST") {
      return Promise.resolve(fail(ErrorCode.MethodNotAllowed));
    }
    if (req.path === "/v1/store/contribute") {
      switch (req.action) {
        case "":
          return Promise.resolve(
            contribute(req, (v, i) => slot.set(v, i), "Shard stored"),
          );
        case "pending":
          return Promise.resolve(
            contribute(
              req,
              (v, i) => slot.setPending(v, i),
              "Pending shard stored",
            ),
          );
        case "forget":
          return Promise.resolve(forget(req));
      }
    }
    if (req.action === "" && req.path === "/v1/store/shard") {
      return Promise.resolve(shard(req));
    }
    return Promise.resolve(
      fail(ErrorCode.BadRequest, "No route for this path and action"),
    );
  };
}
