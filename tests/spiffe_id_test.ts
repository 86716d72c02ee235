// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import {
  parseSpiffeId,
  SpiffeIdError,
  spiffeIdFromParts,
} from "../lib/spiffe/id.ts";

function rejects(value: string, message: RegExp): void {
  assert.throws(
    () => parseSpiffeId(value),
    (e: unknown) => {
      assert.ok(e instanceof SpiffeIdError, `not a SpiffeIdError: ${e}`);
      assert.match(e.message, message);
      return true;
    },
    value,
  );
}

Deno.test("parseSpiffeId accepts valid IDs and splits them", () => {
  assert.deepEqual(parseSpiffeId("spiffe://spike.ist/spike/nexus"), {
    trustDomain: "spike.ist",
    path: "/spike/nexus",
    uri: "spiffe://spike.ist/spike/nexus",
  });
  assert.deepEqual(parseSpiffeId("spiffe://example.org"), {
    trustDomain: "example.org",
    path: "",
    uri: "spiffe://example.org",
  });
  const id = parseSpiffeId("spiffe://a-b_c.d9/Path.With-All_Chars/x..y/...");
  assert.equal(id.path, "/Path.With-All_Chars/x..y/...");
});

Deno.test("parseSpiffeId accepts an IPv4 trust domain", () => {
  assert.equal(parseSpiffeId("spiffe://10.0.0.1/a").trustDomain, "10.0.0.1");
});

Deno.test("parseSpiffeId rejects an empty string", () => {
  rejects("", /empty/);
});

Deno.test("parseSpiffeId rejects a missing scheme", () => {
  rejects("spike.ist/spike/nexus", /Scheme is missing/);
  rejects("//spike.ist/spike/nexus", /Scheme is missing/);
});

Deno.test("parseSpiffeId rejects a wrong scheme", () => {
  rejects("https://spike.ist/spike/nexus", /Scheme is invalid/);
  rejects("spiffe:/spike.ist/a", /Scheme/);
});

Deno.test("parseSpiffeId rejects an uppercase scheme", () => {
  rejects("SPIFFE://spike.ist/a", /lowercase/);
  rejects("Spiffe://spike.ist/a", /lowercase/);
});

Deno.test("parseSpiffeId rejects an empty trust domain", () => {
  rejects("spiffe://", /Trust domain is missing/);
  rejects("spiffe:///a", /Trust domain is missing/);
});

Deno.test("parseSpiffeId rejects bad trust domain characters", () => {
  rejects("spiffe://Spike.ist/a", /Trust domain characters/);
  rejects("spiffe://spike ist/a", /Trust domain characters/);
  rejects("spiffe://spike!ist/a", /Trust domain characters/);
  rejects("spiffe://[::1]/a", /Trust domain/);
  rejects("spiffe://spiké.ist/a", /Trust domain characters/);
});

Deno.test("parseSpiffeId rejects a trust domain over 255 bytes", () => {
  parseSpiffeId(`spiffe://${"a".repeat(255)}/x`);
  rejects(`spiffe://${"a".repeat(256)}/x`, /longer than 255 bytes/);
});

Deno.test("parseSpiffeId rejects a port", () => {
  rejects("spiffe://spike.ist:8443/a", /port/);
});

Deno.test("parseSpiffeId rejects user info", () => {
  rejects("spiffe://user@spike.ist/a", /user info/);
  rejects("spiffe://user:pw@spike.ist/a", /user info/);
});

Deno.test("parseSpiffeId rejects a query", () => {
  rejects("spiffe://spike.ist/a?x=1", /query/);
  rejects("spiffe://spike.ist?x", /query/);
});

Deno.test("parseSpiffeId rejects a fragment", () => {
  rejects("spiffe://spike.ist/a#frag", /fragment/);
});

Deno.test("parseSpiffeId rejects percent-encoding", () => {
  rejects("spiffe://spike.ist/a%20b", /percent-encoding/);
  rejects("spiffe://spike%2eist/a", /percent-encoding/);
});

Deno.test("parseSpiffeId rejects empty path segments", () => {
  rejects("spiffe://spike.ist//a", /empty segments/);
  rejects("spiffe://spike.ist/a//b", /empty segments/);
});

Deno.test("parseSpiffeId rejects dot segments", () => {
  rejects("spiffe://spike.ist/a/./b", /dot segments/);
  rejects("spiffe://spike.ist/a/../b", /dot segments/);
  rejects("spiffe://spike.ist/..", /dot segments/);
});

Deno.test("parseSpiffeId rejects a trailing slash", () => {
  rejects("spiffe://spike.ist/", /trailing slash/);
  rejects("spiffe://spike.ist/a/", /trailing slash/);
});

Deno.test("parseSpiffeId rejects bad path characters", () => {
  rejects("spiffe://spike.ist/a b", /Path segment characters/);
  rejects("spiffe://spike.ist/a:b", /Path segment characters/);
  rejects("spiffe://spike.ist/a*", /Path segment characters/);
  rejects("spiffe://spike.ist/ü", /Path segment characters/);
});

Deno.test("parseSpiffeId keeps path case", () => {
  assert.equal(
    parseSpiffeId("spiffe://spike.ist/Spike/NEXUS").path,
    "/Spike/NEXUS",
  );
});

Deno.test("parseSpiffeId accepts 2048 bytes and rejects longer IDs", () => {
  const prefix = "spiffe://spike.ist/";
  const exact = prefix + "a".repeat(2048 - prefix.length);
  assert.equal(parseSpiffeId(exact).uri.length, 2048);
  rejects(exact + "a", /longer than 2048 bytes/);
  // Bytes, not characters, count.
  rejects(prefix + "é".repeat(1100), /longer than 2048 bytes/);
});

Deno.test("spiffeIdFromParts validates both parts", () => {
  assert.equal(
    spiffeIdFromParts("spike.ist", "/spike/keeper").uri,
    "spiffe://spike.ist/spike/keeper",
  );
  assert.throws(() => spiffeIdFromParts("spike.ist", "spike"), SpiffeIdError);
  assert.throws(() => spiffeIdFromParts("Spike", "/a"), SpiffeIdError);
});
