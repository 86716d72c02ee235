// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Secret hygiene: the whole story (secrets, a workload policy, the cipher,
// a nexus crash, recovery shards, the loss of every process, a restore and
// a drill) with DEBUG logging and the audit log in a file. Then every log,
// audit line, error body, pilot message and file of the cluster — except
// the database, the recovery files and the SVID keys — is searched for the
// secret values, the root key, every shard and the recovery texts, in every
// encoding they could leak in. None may be found.
import assert from "node:assert/strict";
import { Cluster, type RunResult } from "../scripts/cluster.ts";
import {
  combineShards,
  parseRecoveryText,
  type Shard,
} from "../lib/shard/mod.ts";
import { SpikeClient } from "./reliability_support.ts";

const TD = "spike.ist";
const encoder = new TextEncoder();

function randomText(label: string): string {
  return `${label}-${
    Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) =>
      b.toString(16).padStart(2, "0")).join("")
  }`;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Every form in which key material could show up in text or bytes. */
function needlesOfBytes(
  label: string,
  bytes: Uint8Array,
): [string, Uint8Array][] {
  const copy = new Uint8Array(bytes);
  const forms: [string, string][] = [
    ["hex", hex(copy)],
    ["HEX", hex(copy).toUpperCase()],
    ["base64", copy.toBase64()],
    ["base64url", copy.toBase64({ alphabet: "base64url", omitPadding: true })],
    ["int array", `[${Array.from(copy).join(",")}]`],
    ["spaced int array", Array.from(copy).join(", ")],
    ["int list", Array.from(copy).join(",")],
  ];
  return [
    ...forms.map(([form, text]): [string, Uint8Array] => [
      `${label} as ${form}`,
      encoder.encode(text),
    ]),
    [`${label} as raw bytes`, copy],
  ];
}

function needlesOfText(label: string, text: string): [string, Uint8Array][] {
  return [
    [label, encoder.encode(text)],
    [`${label} as base64`, encoder.encode(encoder.encode(text).toBase64())],
    [`${label} JSON-escaped`, encoder.encode(JSON.stringify(text))],
  ];
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  if (needle.length === 0) return false;
  const first = needle[0]!;
  for (
    let i = haystack.indexOf(first);
    i !== -1 && i <= haystack.length - needle.length;
    i = haystack.indexOf(first, i + 1)
  ) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return true;
  }
  return false;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await filesUnder(path));
    else if (entry.isFile) out.push(path);
  }
  return out;
}

Deno.test("no secret value, root key, shard or recovery text in any log, audit line, error body or file", async () => {
  const cluster = await Cluster.create({
    keepers: 3,
    threshold: 2,
    logLevel: "DEBUG",
    keeperUpdateInterval: "1s",
  });
  const audit = `${cluster.dir}/audit.log`;
  cluster.options.nexusEnv.SPIKE_NEXUS_AUDIT_LOG = audit;
  const password = randomText("password");
  const apiKey = randomText("apikey");
  const plaintext = randomText("cipher-plaintext");
  /** Text that must not carry secrets: pilot messages and error bodies. */
  const transcript: [string, Uint8Array][] = [];
  let client: SpikeClient | undefined;
  const pilot = async (
    identity: string,
    args: string[],
    expect: number,
    options: { stdin?: string; stdoutIsData?: boolean } = {},
  ): Promise<RunResult> => {
    const res = await cluster.pilot(
      identity,
      args,
      options.stdin === undefined ? {} : { stdin: options.stdin },
    );
    assert.equal(res.code, expect, `pilot ${args.join(" ")}: ${res.stderr}`);
    transcript.push([
      `stderr of pilot ${args.join(" ")}`,
      encoder.encode(res.stderr),
    ]);
    if (!options.stdoutIsData) {
      transcript.push([
        `stdout of pilot ${args.join(" ")}`,
        encoder.encode(res.stdout),
      ]);
    }
    return res;
  };
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    const su = await SpikeClient.open(
      cluster.svidDir("superuser"),
      cluster.nexusUrl,
    );
    client = su;

    // Secrets and a workload policy.
    await pilot("superuser", [
      "secret",
      "put",
      "billing/db",
      "username=billing",
      `password=${password}`,
    ], 0);
    await pilot(
      "superuser",
      ["secret", "put", "billing/api", `key=${apiKey}`],
      0,
    );
    const got = await pilot("superuser", ["secret", "get", "billing/db"], 0, {
      stdoutIsData: true,
    });
    assert.ok(got.stdout.includes(password));
    await cluster.issue("billing", `spiffe://${TD}/workload/billing`);
    await pilot("billing", ["secret", "get", "billing/db"], 4);
    await pilot("superuser", [
      "policy",
      "create",
      "--name",
      "billing-read",
      "--spiffeid-pattern",
      `^spiffe://spike\\.ist/workload/billing$`,
      "--path-pattern",
      "^billing/.*$",
      "--permissions",
      "read",
    ], 0);
    await pilot("billing", ["secret", "get", "billing/db", "password"], 0, {
      stdoutIsData: true,
    });
    await pilot("billing", [
      "secret",
      "put",
      "billing/db",
      `password=${password}`,
    ], 4);

    // The cipher, both ways.
    const sealed = await pilot(
      "superuser",
      ["cipher", "encrypt", "--json"],
      0,
      {
        stdin: plaintext,
      },
    );
    const opened = await pilot(
      "superuser",
      ["cipher", "decrypt", "--json"],
      0,
      {
        stdin: sealed.stdout,
        stdoutIsData: true,
      },
    );
    assert.ok(opened.stdout.includes(plaintext));

    // Refused requests that carry secrets: their error bodies must not
    // echo them.
    for (
      const [route, body] of [
        ["/v1/store/secrets", { path: "../bad", values: { password } }],
        ["/v1/store/secrets", {
          path: "billing/db",
          values: { [`${password}!`]: "x" },
        }],
        ["/v1/store/secrets", {
          path: "billing/db",
          values: { p: password },
          cas: 99,
        }],
        ["/v1/store/secrets", {
          path: `${password}/../x`,
          values: { p: apiKey },
        }],
        ["/v1/cipher/encrypt", { plaintext: `${plaintext}!` }],
        ["/v1/operator/restore", { id: 1, shard: Array(32).fill(7) }],
      ] as const
    ) {
      const res = await su.post(route, body);
      assert.ok(res.status >= 400, `${route} answered ${res.status}`);
      transcript.push([`error body of ${route}`, res.bytes]);
    }

    // A crash healed by the keepers, recovery shards, total loss, restore.
    await cluster.stopNexus("SIGKILL");
    await cluster.startNexus();
    await cluster.waitUnlocked();
    await pilot("recover", ["operator", "recover"], 0);
    const texts = [1, 2, 3].map((i) =>
      Deno.readTextFileSync(`${cluster.dir}/recover/spike.recovery.${i}.txt`)
    );
    await pilot("restore", ["operator", "drill"], 0);
    await cluster.stopNexus("SIGKILL");
    for (let i = 1; i <= 3; i++) await cluster.stopKeeper(i, "SIGKILL");
    for (let i = 1; i <= 3; i++) await cluster.startKeeper(i);
    await cluster.startNexus();
    await pilot("superuser", ["secret", "get", "billing/db"], 5);
    // A wrong shard first, then two right ones.
    await pilot("restore", ["operator", "restore"], 2, {
      stdin: "spike:1:" + "0".repeat(63) + "1",
    });
    for (const index of [1, 3]) {
      await pilot("restore", ["operator", "restore"], 0, {
        stdin: texts[index - 1]!,
      });
    }
    await cluster.waitUnlocked();
    await pilot("superuser", ["status"], 0);
    await pilot("superuser", ["secret", "get", "billing/api"], 0, {
      stdoutIsData: true,
    });
    // Keepers are re-supplied with DEBUG logging on.
    await new Promise((r) => setTimeout(r, 1_500));
    await su.close();
    client = undefined;
    await cluster.stopNexus("SIGTERM");
    for (let i = 1; i <= 3; i++) await cluster.stopKeeper(i, "SIGTERM");

    // What must appear nowhere.
    const shards: Shard[] = texts.map((t) => parseRecoveryText(t));
    const rootKey = await combineShards(shards.slice(0, 2));
    assert.deepEqual(await combineShards(shards.slice(1)), rootKey);
    const needles: [string, Uint8Array][] = [
      ...needlesOfText("the password", password),
      ...needlesOfText("the API key", apiKey),
      ...needlesOfText("the cipher plaintext", plaintext),
      ...needlesOfBytes("the root key", rootKey),
      ...shards.flatMap((s) => needlesOfBytes(`shard ${s.index}`, s.value)),
      ...texts.map((t, i): [string, Uint8Array] => [
        `recovery text ${i + 1}`,
        encoder.encode(t.trim()),
      ]),
    ];

    const haystacks: [string, Uint8Array][] = [...transcript];
    const skipped: string[] = [];
    for (const file of await filesUnder(cluster.dir)) {
      const name = file.slice(cluster.dir.length + 1);
      if (
        /(^|\/)spike\.db(-wal|-shm)?$/.test(name) ||
        /^recover\/spike\.recovery\.\d+\.txt$/.test(name) ||
        /(^|\/)svid_key\.pem$/.test(name)
      ) {
        skipped.push(name);
        continue;
      }
      haystacks.push([name, await Deno.readFile(file)]);
    }
    assert.ok(haystacks.some(([n]) => n === "audit.log"), "no audit log");
    assert.ok(haystacks.some(([n]) => n.startsWith("logs/nexus")), "no logs");
    const debugLines = haystacks
      .filter(([n]) => n.startsWith("logs/"))
      .reduce(
        (count, [, bytes]) =>
          count +
          new TextDecoder().decode(bytes).split('"level":"DEBUG"').length -
          1,
        0,
      );
    assert.ok(debugLines > 0, "DEBUG logging was not on");

    // The search finds what is there: the recovery file holds its shard's
    // hex, and the data output of "secret get" holds the password.
    const recovery = await Deno.readFile(
      `${cluster.dir}/recover/spike.recovery.1.txt`,
    );
    const shard1 = needles.find(([n]) => n === "shard 1 as hex")!;
    assert.ok(contains(recovery, shard1[1]), "the search misses a shard");
    assert.ok(
      contains(encoder.encode(got.stdout), needles[0]![1]),
      "the search misses the password",
    );

    const found: string[] = [];
    for (const [where, bytes] of haystacks) {
      for (const [what, needle] of needles) {
        if (contains(bytes, needle)) found.push(`${what} in ${where}`);
      }
    }
    assert.deepEqual(found, [], found.join("\n"));
    console.log(
      `searched ${haystacks.length} logs, files and messages for ${needles.length} ` +
        `forms of secrets, key and shards (${debugLines} DEBUG lines); ` +
        `skipped ${skipped.length} database, recovery and key files`,
    );
  } finally {
    await client?.close();
    await cluster.close();
  }
});
