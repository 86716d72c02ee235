// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Bad input over every route of a real nexus and keeper, from a seeded
// PRNG (the seed is printed; SPIKE_TEST_SEED replays a run): random and
// mutated JSON, wrong types, huge numbers, deep nesting, a 10 MB body,
// invalid UTF-8, path traversal, regex bombs in policy patterns, shards of
// the wrong length and out-of-range indexes. Never a crash, never a 5xx,
// and a refused request changes nothing.
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import {
  Prng,
  type Reply,
  sized,
  SpikeClient,
  testSeed,
} from "./reliability_support.ts";

const TD = "spike.ist";
const STREAM = "application/octet-stream";

const WEIRD_NUMBERS = [
  0,
  -1,
  1,
  1.5,
  -0.5,
  2,
  31,
  32,
  33,
  255,
  256,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 53 + 2,
  1e308,
  -1e308,
  5e-324,
];
const WEIRD_STRINGS = [
  "",
  " ",
  ".",
  "..",
  "../../etc/passwd",
  "fuzz/../../etc/shadow",
  "/etc/passwd",
  "fuzz//a",
  "fuzz/./a",
  "%2e%2e%2fetc",
  "..\\..\\windows",
  "spike/system/secrets",
  "\u0000",
  "a\nb",
  "\ud800",
  "\u202e",
  "😀".repeat(50),
  "x".repeat(600),
  "y".repeat(70_000),
  "<script>alert(1)</script>",
  "' OR 1=1 --",
  "${jndi:ldap://127.0.0.1/x}",
  "__proto__",
  "constructor",
  "null",
  "1",
  "true",
  "spiffe://spike.ist/.*",
  "(a+)+$",
];
/** Patterns that a backtracking engine can take seconds on. */
const REGEX_BOMBS = [
  "(a+)+$",
  "(a|aa)*b",
  "(.*a){20}",
  "(\\w+\\s?)+$",
  "^(([a-z])+.)+[A-Z]([a-z])+$",
  "(a*)*b",
  "a{100000}",
  "(?=a)a",
  "(a)\\1",
  ".*.*.*.*x",
  "(x?){1000}x{1000}",
];
const SPIFFE_BOMBS = [
  `spiffe://spike\\.ist/a*a*a*b`,
  `spiffe://spike\\.ist/(a+)+b`,
  `spiffe://.*.*.*.*`,
  `spiffe://spike\\.ist/(a|aa)*b`,
];

/** One request of the fuzz loop. */
interface Probe {
  readonly route: string;
  readonly body: unknown;
  readonly contentType?: string;
}

function randomJson(prng: Prng, depth = 0): unknown {
  switch (prng.int(0, depth > 2 ? 5 : 7)) {
    case 0:
      return null;
    case 1:
      return prng.chance(0.5);
    case 2:
      return prng.pick(WEIRD_NUMBERS);
    case 3:
      return prng.pick(WEIRD_STRINGS);
    case 4:
      return prng.int(-5, 300);
    case 5:
      return prng.string(prng.int(0, 12));
    case 6:
      return Array.from(
        { length: prng.int(0, 40) },
        () => randomJson(prng, depth + 1),
      );
    default: {
      const out: Record<string, unknown> = {};
      for (let i = prng.int(0, 5); i > 0; i--) {
        out[prng.pick([...WEIRD_STRINGS, "path", "id", "shard", "values"])] =
          randomJson(prng, depth + 1);
      }
      return out;
    }
  }
}

function shardLike(prng: Prng): unknown {
  switch (prng.int(0, 7)) {
    case 0:
      return Array.from(
        { length: prng.pick([0, 1, 31, 33, 64, 1000]) },
        () => prng.int(0, 255),
      );
    case 1:
      return Array.from({ length: 32 }, (_, i) => i === 7 ? 256 : 1);
    case 2:
      return Array.from({ length: 32 }, (_, i) => i === 3 ? -1 : 1);
    case 3:
      return Array.from({ length: 32 }, () => 1.5);
    case 4:
      return Array.from({ length: 32 }, () => "1");
    case 5:
      return Array(32).fill(0);
    case 6:
      return "spike:1:" + "ab".repeat(32);
    default:
      return Array.from({ length: 32 }, () => prng.int(0, 255));
  }
}

/** Valid-looking templates per route, for mutation. */
function templates(prng: Prng): Probe[] {
  const shard = () => Array.from({ length: 32 }, () => prng.int(1, 255));
  return [
    {
      route: "/v1/store/secrets",
      body: { path: "fuzz/a", values: { k: "v" }, cas: 99 },
    },
    { route: "/v1/store/secrets?action=get", body: { path: "fuzz/a" } },
    {
      route: "/v1/store/secrets?action=delete",
      body: { path: "fuzz/none", versions: [1] },
    },
    {
      route: "/v1/store/secrets?action=undelete",
      body: { path: "fuzz/none", versions: [1] },
    },
    { route: "/v1/store/secrets?action=list", body: {} },
    {
      route: "/v1/store/secrets/metadata?action=get",
      body: { path: "fuzz/a", version: 0 },
    },
    {
      route: "/v1/acl/policy",
      body: {
        name: "fuzz-new",
        spiffeidPattern: prng.pick(SPIFFE_BOMBS),
        pathPattern: prng.pick(REGEX_BOMBS),
        permissions: ["read"],
      },
    },
    { route: "/v1/acl/policy?action=get", body: { id: "fuzz-policy" } },
    { route: "/v1/acl/policy?action=delete", body: { id: "fuzz-none" } },
    { route: "/v1/acl/policy?action=list", body: { pathPattern: "fuzz/.*" } },
    { route: "/v1/cipher/encrypt", body: { plaintext: "aGVsbG8=" } },
    {
      route: "/v1/cipher/decrypt",
      body: {
        version: 1,
        nonce: "AAAAAAAAAAAAAAAA",
        ciphertext: "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      },
    },
    {
      route: "/v1/cipher/decrypt",
      body: prng.bytes(prng.int(0, 64)),
      contentType: STREAM,
    },
    { route: "/v1/operator/restore", body: { id: 1, shard: shard() } },
    {
      route: "/v1/operator/drill",
      body: { shards: [{ id: 1, shard: shard() }] },
    },
    { route: "/v1/operator/status", body: {} },
    { route: "/v1/operator/recover", body: { extra: [1] } },
  ];
}

function mutate(prng: Prng, probe: Probe): Probe {
  const body = probe.body;
  if (body instanceof Uint8Array || body === null || typeof body !== "object") {
    return { ...probe, body: prng.bytes(prng.int(0, 200)) };
  }
  const copy: Record<string, unknown> = { ...body as Record<string, unknown> };
  const keys = Object.keys(copy);
  const key = keys.length > 0 && prng.chance(0.8)
    ? prng.pick(keys)
    : prng.pick(["extra", "__proto__", "constructor", "path", "id"]);
  switch (prng.int(0, 5)) {
    case 0:
      delete copy[key];
      break;
    case 1:
      copy[key] = key === "shard" || key === "shards"
        ? shardLike(prng)
        : randomJson(prng);
      break;
    case 2:
      copy[key] = prng.pick(WEIRD_STRINGS);
      break;
    case 3:
      copy[key] = prng.pick(WEIRD_NUMBERS);
      break;
    case 4:
      copy[key] = { nested: copy[key] };
      break;
    default:
      copy[key] = [copy[key]];
  }
  return { ...probe, body: copy };
}

/** Bodies no JSON encoder writes. */
function rawBody(prng: Prng): Uint8Array | string {
  switch (prng.int(0, 9)) {
    case 0:
      return new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]);
    case 1:
      return '{"path": "fuzz/a\xc0\xaf"}';
    case 2:
      return "[".repeat(50_000);
    case 3:
      return '{"a":'.repeat(20_000) + "1" + "}".repeat(20_000);
    case 4:
      return `{"path":"fuzz/a","version":${"9".repeat(5_000)}}`;
    case 5:
      return '{"path":"fuzz/a","path":"fuzz/b","values":{"k":"v"}}';
    case 6:
      return '{"path":"fuzz/a"';
    case 7:
      return new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d]);
    case 8:
      return `{"path":"\\ud800\\udc00\\ud800","values":{"k":"\\u0000"}}`;
    default:
      return prng.bytes(prng.int(1, 300));
  }
}

const ROUTE_SUFFIXES = [
  "?action=../get",
  "?action=get&action=delete",
  "/../../etc/passwd",
  "?action=%00",
  "/extra",
];

function nextProbe(prng: Prng): Probe {
  const all = templates(prng);
  const base = prng.pick(all);
  switch (prng.int(0, 9)) {
    case 0:
      return { ...base, body: randomJson(prng) };
    case 1:
      return { ...base, body: rawBody(prng) };
    case 2:
      return {
        route: base.route.split("?")[0] + prng.pick(ROUTE_SUFFIXES),
        body: base.body,
      };
    case 3:
      return {
        ...base,
        contentType: base.contentType === STREAM ? "application/json" : STREAM,
      };
    default:
      return mutate(prng, prng.chance(0.3) ? mutate(prng, base) : base);
  }
}

/** What a refused request must leave as it was. */
async function nexusSnapshot(su: SpikeClient): Promise<string> {
  const parts: unknown[] = [];
  for (
    const [route, body] of [
      ["/v1/store/secrets?action=list", {}],
      ["/v1/store/secrets/metadata?action=get", { path: "fuzz/a" }],
      ["/v1/store/secrets?action=get", { path: "fuzz/a" }],
      ["/v1/store/secrets?action=get", { path: "fuzz/b" }],
      ["/v1/acl/policy?action=list", {}],
      ["/v1/acl/policy?action=get", { id: "fuzz-policy" }],
      ["/v1/operator/status", {}],
    ] as const
  ) {
    const res = await su.post(route, body);
    const json = res.json as Record<string, unknown> | undefined;
    if (json && "keepers" in json) delete json.keepers;
    // Encryption counts resume at the reserved bound after a restart.
    if (json && "dataKeys" in json) delete json.dataKeys;
    parts.push([res.status, json]);
  }
  return JSON.stringify(parts);
}

function describe(probe: Probe): string {
  const body = probe.body instanceof Uint8Array
    ? `<${probe.body.length} bytes>`
    : typeof probe.body === "string"
    ? probe.body.slice(0, 80)
    : JSON.stringify(probe.body)?.slice(0, 160);
  return `${probe.route} ${probe.contentType ?? ""} ${body}`;
}

async function send(client: SpikeClient, probe: Probe): Promise<Reply> {
  return await client.post(probe.route, probe.body, probe.contentType);
}

Deno.test("fuzzed requests to every nexus and keeper route: no crash, no 5xx, no change when refused", async (t) => {
  const seed = testSeed("fuzz");
  const prng = new Prng(seed);
  const cluster = await Cluster.create({ keepers: 3, threshold: 2 });
  const clients: SpikeClient[] = [];
  const open = async (
    name: string,
    url = cluster.nexusUrl,
    role?: "keeper",
  ) => {
    const c = await SpikeClient.open(
      cluster.svidDir(name),
      url,
      role ? { role } : {},
    );
    clients.push(c);
    return c;
  };
  const counts = { nexus: 0, locked: 0, keeper: 0, refused: 0 };
  let afterUnlocked = "";
  try {
    await cluster.issue("workload", `spiffe://${TD}/workload/fuzz`);
    await cluster.start();
    await cluster.waitUnlocked();
    const su = await open("superuser");
    const others = [
      su,
      su,
      su,
      await open("workload"),
      await open("restore"),
      await open("recover"),
      await open("keeper-1"),
    ];
    for (
      const [route, body] of [
        ["/v1/store/secrets", { path: "fuzz/a", values: { k: "one" } }],
        ["/v1/store/secrets", { path: "fuzz/a", values: { k: "two" } }],
        ["/v1/store/secrets", { path: "fuzz/b", values: { k: "b" } }],
        ["/v1/acl/policy", {
          name: "fuzz-policy",
          spiffeidPattern: `^spiffe://${TD}/workload/fuzz$`,
          pathPattern: "^fuzz/b$",
          permissions: ["read"],
        }],
      ] as const
    ) {
      assert.equal((await su.post(route, body)).status, 200);
    }

    const check = async (
      probe: Probe,
      client: SpikeClient,
      snapshot: () => Promise<string>,
      before: string,
      alive: () => boolean,
    ): Promise<string> => {
      let reply: Reply | undefined;
      try {
        reply = await send(client, probe);
      } catch (e) {
        // Only a body over the limit may be cut off mid-upload.
        assert.ok(alive(), `process died on ${describe(probe)} (seed ${seed})`);
        if ((probe.body as Uint8Array).length >= 1_000_000) return before;
        throw new Error(`No answer to ${describe(probe)} (seed ${seed})`, {
          cause: e,
        });
      }
      assert.ok(alive(), `process died on ${describe(probe)} (seed ${seed})`);
      assert.ok(
        reply.status < 500,
        `${reply.status} ${
          new TextDecoder().decode(reply.bytes).slice(0, 100)
        } for ${describe(probe)} (seed ${seed})`,
      );
      if (reply.status < 300) return await snapshot();
      counts.refused++;
      assert.equal(
        typeof reply.json?.err,
        "string",
        `no err code for ${describe(probe)}`,
      );
      if (reply.status === 400) {
        assert.equal(
          typeof reply.json?.reason,
          "string",
          `no reason for the 400 to ${describe(probe)}`,
        );
      }
      const after = await snapshot();
      assert.equal(
        after,
        before,
        `state changed by a refused ${describe(probe)} (seed ${seed})`,
      );
      return after;
    };

    await t.step("nexus routes, unlocked", async () => {
      const nexusAlive = () => cluster.nexus?.running === true;
      let state = await nexusSnapshot(su);
      const snap = () => nexusSnapshot(su);
      const special: Probe[] = [
        // A 10 MB body, ten times the limit.
        { route: "/v1/store/secrets", body: new Uint8Array(10 * 1024 * 1024) },
        ...REGEX_BOMBS.map((pathPattern): Probe => ({
          route: "/v1/acl/policy",
          body: {
            name: "bomb",
            spiffeidPattern: `^spiffe://${TD}/workload/fuzz$`,
            pathPattern,
            permissions: ["read"],
          },
        })),
        ...SPIFFE_BOMBS.map((spiffeidPattern): Probe => ({
          route: "/v1/acl/policy",
          body: {
            name: "bomb",
            spiffeidPattern,
            pathPattern: "^fuzz/b$",
            permissions: ["read"],
          },
        })),
        {
          route: "/v1/store/secrets?action=get",
          body: { path: "../../../../etc/passwd" },
        },
        {
          route: "/v1/store/secrets",
          body: { path: "fuzz/a/../b", values: {} },
        },
        // Which duplicate wins differs between parsers: refused.
        {
          route: "/v1/store/secrets",
          body: '{"path":"fuzz/a","path":"fuzz/b","values":{"k":"v"}}',
        },
      ];
      for (const probe of special) {
        state = await check(probe, su, snap, state, nexusAlive);
        counts.nexus++;
      }
      for (const probe of special.slice(1)) {
        // Every bomb, traversal and duplicate is refused, not stored.
        const res = await send(su, probe);
        assert.equal(res.status, 400, describe(probe));
      }
      const iterations = sized(300, 2000);
      for (let i = 0; i < iterations; i++) {
        const probe = nextProbe(prng);
        state = await check(probe, prng.pick(others), snap, state, nexusAlive);
        counts.nexus++;
      }
      afterUnlocked = state;
    });

    await t.step("operator routes, locked", async () => {
      // Only keeper 1 answers: nexus stays locked and takes restore shards.
      await cluster.stopNexus();
      cluster.keepers.get(2)!.signal("SIGSTOP");
      cluster.keepers.get(3)!.signal("SIGSTOP");
      try {
        await cluster.startNexus();
        const restore = await open("restore");
        const snap = async () => {
          const s = await restore.post("/v1/operator/status");
          assert.equal(s.json?.state, "locked");
          return JSON.stringify((s.json as { restore: unknown }).restore);
        };
        let state = await snap();
        const nexusAlive = () => cluster.nexus?.running === true;
        for (let i = 0; i < sized(80, 400); i++) {
          const route = prng.pick([
            "/v1/operator/restore",
            "/v1/operator/restore",
            "/v1/operator/drill",
            "/v1/operator/status",
          ]);
          const base = prng.pick(
            templates(prng).filter((p) => p.route === route),
          );
          const probe = prng.chance(0.2)
            ? { ...base, body: rawBody(prng) }
            : mutate(prng, base);
          state = await check(probe, restore, snap, state, nexusAlive);
          counts.locked++;
        }
        const data = await su.post("/v1/store/secrets?action=list");
        assert.equal(data.status, 503);
      } finally {
        cluster.keepers.get(2)!.signal("SIGCONT");
        cluster.keepers.get(3)!.signal("SIGCONT");
      }
      await cluster.waitUnlocked();
    });

    await t.step("keeper routes", async () => {
      const keeper = await open("nexus", cluster.keeperUrl(3), "keeper");
      const keeperAlive = () => cluster.keepers.get(3)?.running === true;
      const snap = async () => {
        const res = await keeper.post("/v1/store/shard");
        return `${res.status} ${new TextDecoder().decode(res.bytes)}`;
      };
      let state = await snap();
      const shardProbe = (): Probe => {
        const body: Record<string, unknown> = {
          shard: shardLike(prng),
          index: prng.pick([0, 3, -1, 256, 1e9, "3", null, 2.5]),
        };
        return {
          route: "/v1/store/contribute",
          body: prng.chance(0.3)
            ? mutate(prng, { route: "", body }).body
            : body,
        };
      };
      for (let i = 0; i < sized(80, 400); i++) {
        const probe = prng.chance(0.7)
          ? shardProbe()
          : prng.chance(0.5)
          ? { route: "/v1/store/contribute", body: rawBody(prng) }
          : {
            route: prng.pick(["/v1/store/shard", "/v1/store/shard?action=x"]),
            body: prng.chance(0.5) ? randomJson(prng) : rawBody(prng),
          };
        state = await check(probe, keeper, snap, state, keeperAlive);
        counts.keeper++;
      }
      // Nexus puts the right shard back on its next push.
      await cluster.stopNexus("SIGKILL");
      await cluster.startNexus();
      await cluster.waitUnlocked();
    });

    await t.step(
      "nexus state survived the locked and keeper fuzzing",
      async () => {
        assert.equal(await nexusSnapshot(su), afterUnlocked);
      },
    );
    console.log(`fuzz requests: ${JSON.stringify(counts)}`);
  } finally {
    for (const c of clients) await c.close();
    await cluster.close();
  }
});
