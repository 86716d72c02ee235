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
  const held = slot.get();
  assert.equal(held?.index, 2);
  assert.deepEqual(Array.from(held!.value), plain.map(Number));
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
  assert.equal(slot.get(), undefined);
  const compatible = keeperHandler(slot, createLogger("keeper-test"), true);
  const stored = await compatible({
    ...asBootstrap,
    body: encoder.encode(shardText(plain)),
  });
  assert.equal(stored.status, 200);
  assert.equal(slot.get()?.index, 2);
  slot.clear();
});
