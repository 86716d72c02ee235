// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Unit tests of the operator restore and drill handlers: whatever fails,
 * the share numbers parsed from the body are zeroed, and shard numbers
 * must be plain integers.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseSpiffeId } from "../lib/spiffe/id.ts";
import { ApiError, ErrorCode } from "../lib/wire/errors.ts";
import { derivePurposeKeys, keyCheckValue } from "../lib/crypto/kdf.ts";
import { computeCommitments, splitRootKey } from "../lib/shard/mod.ts";
import type { MtlsResponse } from "../lib/mtls/server.ts";
import {
  type OperatorDeps,
  operatorRoutes,
} from "../modes/nexus/routes/operator.ts";
import { RootKeyState } from "../modes/nexus/root_key.ts";
import { RestoreSession } from "../modes/nexus/restore.ts";
import type { StoreMeta } from "../modes/nexus/store/backend.ts";
import type { Route } from "../modes/nexus/router.ts";

const RESTORER = parseSpiffeId("spiffe://spike.ist/spike/pilot/role/restore");
// A share byte no other array in these tests holds.
const MARK = 173;

function depsFor(meta: StoreMeta): OperatorDeps {
  const state = new RootKeyState();
  return {
    state,
    meta: () => meta,
    restore: new RestoreSession(state, () => meta, 60_000, false),
    keepers: undefined,
    backend: "sqlite",
    allowThresholdOne: false,
    push: undefined,
    exclusive: (task) => task(),
    recoveryExported: () => Promise.resolve(),
    lifecycleStatus: () => Promise.resolve({}),
  };
}

function fakeMeta(): StoreMeta {
  return {
    storeId: crypto.getRandomValues(new Uint8Array(16)),
    keyCheck: new Uint8Array(32),
    threshold: 2,
    shareCount: 3,
    commitments: [1, 2, 3].map(() => new Uint8Array(32)),
  };
}

function route(deps: OperatorDeps, path: string): Route {
  const found = operatorRoutes(deps).find(([p]) => p === path);
  assert.ok(found, path);
  return found[1];
}

/**
 * Runs a handler on a JSON body while recording every array built by
 * `push` (which is how the JSON reader builds its arrays), so the test can
 * look at the parsed share numbers after the handler is done with them.
 */
async function runCapturing(
  handler: Route["handler"],
  body: string,
): Promise<
  { arrays: unknown[][]; response?: MtlsResponse; error?: unknown }
> {
  const arrays = new Set<unknown[]>();
  const push = Array.prototype.push;
  Array.prototype.push = function (this: unknown[], ...items: unknown[]) {
    arrays.add(this);
    return push.apply(this, items);
  };
  const outcome: { response?: MtlsResponse; error?: unknown } = {};
  try {
    outcome.response = await handler({
      peerId: RESTORER,
      body: new TextEncoder().encode(body),
      contentType: "application/json",
      resource: null,
    });
  } catch (e) {
    outcome.error = e;
  } finally {
    Array.prototype.push = push;
  }
  return { arrays: [...arrays], ...outcome };
}

function markedShard(): number[] {
  return new Array(32).fill(MARK);
}

function assertWiped(arrays: unknown[][], shardCount: number): void {
  const shardArrays = arrays.filter((a) => a.length === 32);
  assert.ok(
    shardArrays.length >= shardCount,
    `saw ${shardArrays.length} parsed shard arrays`,
  );
  for (const a of shardArrays) {
    assert.ok(a.every((n) => n === 0), "a parsed shard array kept its values");
  }
}

function assertBadRequest(error: unknown, message?: RegExp): void {
  assert.ok(error instanceof ApiError, String(error));
  assert.equal(error.code, ErrorCode.BadRequest);
  if (message) assert.match(error.message, message);
}

Deno.test("restore zeroes the parsed shard numbers when the shard id is bad", async () => {
  const deps = depsFor(fakeMeta());
  for (const id of [0, 4, -1, "1", null, true]) {
    const { arrays, error } = await runCapturing(
      route(deps, "/v1/operator/restore").handler,
      JSON.stringify({ id, shard: markedShard() }),
    );
    assertBadRequest(error, /Shard id/);
    assertWiped(arrays, 1);
  }
});

Deno.test("restore zeroes every array of a body whose shard is malformed", async () => {
  const deps = depsFor(fakeMeta());
  const { arrays, error } = await runCapturing(
    route(deps, "/v1/operator/restore").handler,
    JSON.stringify({
      id: 1,
      shard: [...markedShard().slice(1), 300],
      extra: markedShard(),
    }),
  );
  assertBadRequest(error, /Shard must be/);
  assertWiped(arrays, 2);
});

Deno.test("restore refuses shard numbers written with an exponent or fraction", async () => {
  const deps = depsFor(fakeMeta());
  for (const odd of ["1.73e2", "173.0"]) {
    const numbers = markedShard().map(String);
    numbers[3] = odd;
    const { error } = await runCapturing(
      route(deps, "/v1/operator/restore").handler,
      `{"id":1,"shard":[${numbers.join(",")}]}`,
    );
    assertBadRequest(error, /number must be a plain integer/);
  }
  assert.equal(deps.restore.collected, 0);
});

Deno.test("drill zeroes every parsed shard when one item fails its check", async () => {
  const deps = depsFor(fakeMeta());
  const bodies = [
    // The first item fails on its id, before its shard is taken.
    [{ id: 0, shard: markedShard() }, { id: 1, shard: markedShard() }],
    // A later item fails; the ones after it are never looked at.
    [
      { id: 1, shard: markedShard() },
      { id: 2, shard: [MARK] },
      { id: 3, shard: markedShard() },
    ],
    [{ id: 1, shard: markedShard() }, "not an item", {
      id: 2,
      shard: markedShard(),
    }],
  ];
  for (const shards of bodies) {
    const { arrays, error } = await runCapturing(
      route(deps, "/v1/operator/drill").handler,
      JSON.stringify({ shards }),
    );
    assertBadRequest(error);
    assertWiped(arrays, 2);
  }
});

Deno.test("drill with real shards reports them and zeroes the parsed numbers", async () => {
  const rootKey = crypto.getRandomValues(new Uint8Array(32));
  const storeId = crypto.getRandomValues(new Uint8Array(16));
  const shards = await splitRootKey(rootKey, 3, 2);
  const meta: StoreMeta = {
    storeId,
    keyCheck: await keyCheckValue(await derivePurposeKeys(rootKey, storeId)),
    threshold: 2,
    shareCount: 3,
    commitments: await computeCommitments(storeId, shards),
  };
  const deps = depsFor(meta);
  const { arrays, response, error } = await runCapturing(
    route(deps, "/v1/operator/drill").handler,
    JSON.stringify({
      shards: [
        { id: 1, shard: [...shards[0]!.value] },
        { id: 3, shard: [...shards[2]!.value] },
        { id: 2, shard: markedShard() },
      ],
    }),
  );
  assert.equal(error, undefined);
  assert.equal(response?.status, 200);
  assert.deepEqual(JSON.parse(String(response?.body)), {
    valid: [1, 3],
    invalid: [2],
    wouldRestore: true,
    threshold: 2,
  });
  assertWiped(arrays, 3);
});
