// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import {
  OTHER_SOURCES,
  RefusalLog,
  type RefusalReport,
  sourceOf,
} from "../lib/mtls/refusal_log.ts";

Deno.test("a refusal's source is its address without the port, or its SPIFFE ID", () => {
  assert.equal(sourceOf("10.0.0.7:51234"), "10.0.0.7");
  assert.equal(sourceOf("::1:51234"), "::1");
  assert.equal(sourceOf("unknown"), "unknown");
  assert.equal(
    sourceOf("spiffe://spike.ist/workload/x"),
    "spiffe://spike.ist/workload/x",
  );
});

Deno.test("the first refusal of a source is told at once, the rest as one count", () => {
  const told: RefusalReport[] = [];
  const refusals = new RefusalLog(3_600_000, (r) => told.push(r));
  refusals.refuse("TLS handshake failed: a", "10.0.0.7:1");
  refusals.refuse("TLS handshake failed: b", "10.0.0.7:2");
  refusals.refuse("TLS handshake failed: c", "10.0.0.7:3");
  refusals.refuse("not authorized", "10.0.0.8:1");
  assert.deepEqual(told, [
    { reason: "TLS handshake failed: a", peer: "10.0.0.7:1", count: undefined },
    { reason: "not authorized", peer: "10.0.0.8:1", count: undefined },
  ]);
  refusals.flush();
  assert.deepEqual(told.slice(2), [
    { reason: "TLS handshake failed: c", peer: "10.0.0.7", count: 2 },
  ]);
  // A new interval starts afresh.
  refusals.refuse("TLS handshake failed: d", "10.0.0.7:4");
  assert.equal(told.at(-1)?.peer, "10.0.0.7:4");
  refusals.flush();
  assert.equal(told.length, 4);
});

Deno.test("sources beyond the bound share one count", () => {
  const told: RefusalReport[] = [];
  const refusals = new RefusalLog(3_600_000, (r) => told.push(r));
  for (let i = 0; i < 1100; i++) {
    refusals.refuse("x", `10.1.${i >> 8}.${i & 255}:9`);
  }
  assert.equal(told.length, 1024);
  refusals.flush();
  assert.deepEqual(told.at(-1), {
    reason: "x",
    peer: OTHER_SOURCES,
    count: 76,
  });
});
