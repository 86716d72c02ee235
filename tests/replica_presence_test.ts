// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The push leadership of replicas: a leader stopped at any point of its
// beat (here: its connection frozen right after one of its statements went
// out, as a SIGSTOP would leave it) loses the leadership to another
// replica, because PostgreSQL ends its session; it must never leave the
// session half-way through an exchange in which no idle timeout runs.
import assert from "node:assert/strict";
import type { Logger } from "../lib/log.ts";
import { Presence } from "../modes/nexus/ha/presence.ts";
import { PostgresBackend } from "../modes/nexus/store/postgres_backend.ts";
import { TcpProxy } from "../scripts/tcp_proxy.ts";
import {
  announceSkip,
  freshSchema,
  pg,
  testDatabase,
  testPool,
} from "./pg_support.ts";
import { waitFor } from "./reliability_support.ts";

announceSkip("replica_presence_test.ts");

const BEAT_MS = 200;

// A leader frozen right after sending the statement that holds `marker`
// (a function of the leader) hands the leadership over.
async function frozenLeaderHandsOver(marker: (leader: Presence) => string) {
  const schema = await freshSchema();
  // Creates the tables.
  await (await PostgresBackend.open(testPool(testDatabase(schema)))).close();
  // The cut connections' warnings say nothing here.
  const log: Logger = { debug() {}, info() {}, warn() {}, error() {} };
  const proxy = TcpProxy.start({ hostname: pg!.host, port: pg!.port });
  const presence = (port: number, name: string) =>
    new Presence({
      pool: testPool(testDatabase(schema, { port })),
      beatMs: BEAT_MS,
      name,
      port: 1,
      unlocked: () => true,
      log,
    });
  const frozen = presence(proxy.port, "frozen");
  const next = presence(pg!.port, "next");
  try {
    frozen.start();
    await waitFor("the first leader", () => frozen.isLeader);
    next.start();
    proxy.freezeOnce(marker(frozen));
    await waitFor(
      "the leader's connection to freeze",
      () => proxy.hanging === 1,
    );
    // PostgreSQL ends the frozen session after its idle_session_timeout
    // (5 s here); the next beat of the other replica takes the lock.
    await waitFor(
      "another replica to lead",
      () => next.isLeader,
      30_000,
    );
    assert.equal(proxy.hanging, 1, "the frozen leader stayed frozen");
  } finally {
    // Dropping the frozen connection ends the leader's hung beat.
    proxy.close();
    await frozen.close();
    await next.close();
  }
}

Deno.test({
  name:
    "a push leader frozen right after any statement of its beat loses the leadership",
  ignore: !pg,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await Promise.all([
      // The statement that takes or confirms the lock.
      frozenLeaderHandsOver(() => "pg_try_advisory_lock"),
      // The presence row's upsert.
      frozenLeaderHandsOver((leader) =>
        new TextEncoder().encode(leader.id).toHex()
      ),
      // The leader's cleanup of old rows.
      frozenLeaderHandsOver(() => "make_interval(secs =>"),
    ]);
  },
});
