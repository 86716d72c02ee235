// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The keeper's two routes as a handler: who may store and read a shard,
// and which bodies are refused without touching the held shard.
import assert from "node:assert/strict";
import { createLogger } from "../lib/log.ts";
import { parseSpiffeId } from "../lib/spiffe/id.ts";
import { keeperHandler } from "../modes/keeper/routes.ts";
import { ShardSlot } from "../modes/keeper/shard_slot.ts";

const NEXUS = parseSpiffeId("spiffe://spike.ist/spike/nexus");
const encoder = new TextEncoder();

function request(path: string, body: string) {
  return {
    peerId: NEXUS,
    method: "POST",
    path,
    action: "",
    contentType: "application/json",
    body: encoder.encode(body),
  };
}

function shardText(values: string[]) {
  return `{"shard":[${values.join(",")}],"index":2}`;
}

Deno.test("keeper stores a shard of plain integers and refuses numbers written any other way", async () => {
  const slot = new ShardSlot();
  const handle = keeperHandler(slot, createLogger("keeper-test"));
  const plain = Array.from({ length: 32 }, (_, i) => String(i + 1));
  const stored = await handle(
    request("/v1/store/contribute", shardText(plain)),
  );
  assert.equal(stored.status, 200);
  for (const odd of ["1e1", "10.0", "1E+1", "0.5e1"]) {
    const values = [...plain];
    values[0] = odd;
    const res = await handle(
      request("/v1/store/contribute", shardText(values)),
    );
    assert.equal(res.status, 400, odd);
    // Every 400 names its reason, never the numbers sent.
    const body = JSON.parse(String(res.body));
    assert.equal(body.err, "api_bad_request");
    assert.match(body.reason, /plain integer/);
  }
  for (
    const [path, body] of [
      ["/v1/store/contribute", '{"shard":[1,2]}'],
      ["/v1/store/shard", "{"],
      ["/v1/store/nothing", "{}"],
    ] as const
  ) {
    const res = await handle(request(path, body));
    assert.equal(res.status, 400, path);
    assert.equal(typeof JSON.parse(String(res.body)).reason, "string", path);
  }
  const held = slot.get().current;
  assert.equal(held?.index, 2);
  assert.deepEqual(Array.from(held!.value), plain.map(Number));
  slot.clear();
});

function shardBody(fill: number, index: number) {
  return `{"shard":[${new Array(32).fill(fill).join(",")}],"index":${index}}`;
}

async function answer(handle: ReturnType<typeof keeperHandler>) {
  const res = await handle(request("/v1/store/shard", "{}"));
  const text = typeof res.body === "string"
    ? res.body
    : new TextDecoder().decode(res.body);
  return { status: res.status, body: text === "" ? {} : JSON.parse(text) };
}

Deno.test("a pending shard waits beside the current one until a current shard replaces both, or forget drops them", async () => {
  const slot = new ShardSlot();
  const handle = keeperHandler(slot, createLogger("keeper-test"));
  const contribute = (body: string, action = "") =>
    handle({ ...request("/v1/store/contribute", body), action });
  assert.equal((await answer(handle)).status, 404);
  // A pending shard alone is held and answered.
  assert.equal((await contribute(shardBody(9, 4), "pending")).status, 200);
  assert.deepEqual((await answer(handle)).body, {
    pending: { shard: new Array(32).fill(9), index: 4 },
  });
  assert.equal((await contribute(shardBody(1, 2))).status, 200);
  assert.equal((await contribute(shardBody(7, 2), "pending")).status, 200);
  assert.deepEqual((await answer(handle)).body, {
    shard: new Array(32).fill(1),
    index: 2,
    pending: { shard: new Array(32).fill(7), index: 2 },
  });
  // A bad pending shard changes nothing.
  assert.equal((await contribute(shardBody(0, 2), "pending")).status, 400);
  assert.equal((await answer(handle)).body.pending.shard[0], 7);
  // The commit: a current shard, and the pending one is gone.
  assert.equal((await contribute(shardBody(7, 2))).status, 200);
  assert.deepEqual((await answer(handle)).body, {
    shard: new Array(32).fill(7),
    index: 2,
  });
  assert.equal((await contribute(shardBody(5, 3), "pending")).status, 200);
  assert.equal((await contribute("{}", "forget")).status, 200);
  assert.equal((await answer(handle)).status, 404);
  // Only nexus may make a keeper forget; unknown actions are refused.
  const bootstrap = parseSpiffeId("spiffe://spike.ist/spike/bootstrap");
  await contribute(shardBody(3, 1));
  const refused = await handle({
    ...request("/v1/store/contribute", "{}"),
    action: "forget",
    peerId: bootstrap,
  });
  assert.equal(refused.status, 401);
  assert.equal((await contribute(shardBody(4, 1), "commit")).status, 400);
  assert.equal((await answer(handle)).body.shard[0], 3);
  slot.clear();
});

Deno.test("keeper takes a shard from bootstrap only when allowed", async () => {
  const plain = Array.from({ length: 32 }, (_, i) => String(i + 1));
  const asBootstrap = {
    ...request("/v1/store/contribute", shardText(plain)),
    peerId: parseSpiffeId("spiffe://spike.ist/spike/bootstrap"),
  };
  const slot = new ShardSlot();
  const strict = keeperHandler(slot, createLogger("keeper-test"));
  const refused = await strict(asBootstrap);
  assert.equal(refused.status, 401);
  assert.deepEqual(slot.get(), {});
  const compatible = keeperHandler(slot, createLogger("keeper-test"), true);
  const stored = await compatible({
    ...asBootstrap,
    body: encoder.encode(shardText(plain)),
  });
  assert.equal(stored.status, 200);
  assert.equal(slot.get().current?.index, 2);
  slot.clear();
});
