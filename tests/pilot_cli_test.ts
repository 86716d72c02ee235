// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike pilot` as a process with scoped permissions, against an mTLS
 * server holding a nexus SVID that answers what each step sets. This checks
 * what pilot sends, prints and exits with; the end-to-end tests run it
 * against a real nexus.
 */
import assert from "node:assert/strict";
import { createDevCa, type DevCa, issueSvidDir } from "../scripts/dev_ca.ts";
import { runPilot, type RunResult } from "../scripts/cluster.ts";
import { type MtlsResponse, serveMtls } from "../lib/mtls/server.ts";
import { issueMaterial, TestSource } from "./mtls_support.ts";

interface Seen {
  path: string;
  action: string;
  contentType: string;
  peer: string;
  body: Uint8Array;
}

const json = (status: number, value: unknown): MtlsResponse => ({
  status,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(value),
});

const bodyJson = (seen: Seen | undefined) =>
  JSON.parse(new TextDecoder().decode(seen!.body));

class Harness {
  readonly seen: Seen[] = [];
  answer: (req: Seen) => MtlsResponse = () => json(500, {});
  constructor(readonly dir: string, readonly port: number) {}

  reply(fn: (req: Seen) => MtlsResponse) {
    this.seen.length = 0;
    this.answer = fn;
  }

  async pilot(
    identity: string,
    args: string[],
    options: { stdin?: string | Uint8Array; env?: Record<string, string> } = {},
  ): Promise<RunResult> {
    const env: Record<string, string> = {
      SPIKE_SVID_DIR: `${this.dir}/svid/${identity}`,
      SPIKE_NEXUS_API_URL: `https://127.0.0.1:${this.port}`,
      SPIKE_PILOT_RECOVERY_DIR: `${this.dir}/recover`,
      HOME: this.dir,
      ...options.env,
    };
    return await runPilot(args, env, this.dir, options.stdin);
  }
}

/** Asserts a failure: exit code, nothing on stdout, one line on stderr. */
function assertFails(run: RunResult, code: number, pattern: RegExp) {
  assert.equal(run.code, code, run.stderr);
  assert.equal(run.stdout, "");
  assert.match(run.stderr.trimEnd(), pattern);
  assert.equal(run.stderr.trimEnd().split("\n").length, 1, run.stderr);
}

const HEX1 = "01".repeat(32);
const SHARD1 = new Array(32).fill(1);

Deno.test("spike pilot as a process", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "pilot_cli_" });
  const ca: DevCa = await createDevCa("spike.ist");
  for (const role of ["superuser", "recover", "restore"]) {
    await issueSvidDir(
      ca,
      `spiffe://spike.ist/spike/pilot/role/${role}`,
      `${dir}/svid/${role}`,
    );
  }
  await issueSvidDir(ca, "spiffe://spike.ist/app/web", `${dir}/svid/web`);
  const source = new TestSource(
    await issueMaterial(ca, "spiffe://spike.ist/spike/nexus"),
  );
  let harness: Harness | undefined;
  const server = await serveMtls({
    source,
    authorizePeer: () => true,
    hostname: "127.0.0.1",
    port: 0,
    maxBodyBytes: 1 << 20,
    handler: (req) => {
      const seen: Seen = {
        path: req.path,
        action: req.action,
        contentType: req.contentType,
        peer: req.peerId.uri,
        body: req.body.slice(),
      };
      harness!.seen.push(seen);
      return Promise.resolve(harness!.answer(seen));
    },
  });
  const h = harness = new Harness(dir, server.port);

  try {
    await t.step(
      "--help prints the commands and exit codes on stdout",
      async () => {
        const run = await h.pilot("superuser", ["--help"]);
        assert.equal(run.code, 0);
        assert.equal(run.stderr, "");
        assert.match(run.stdout, /Exit codes:\n {2}0 {2}success/);
        const sub = await h.pilot("superuser", ["secret", "get", "--help"]);
        assert.equal(sub.code, 0);
        assert.match(sub.stdout, /-v, --version N/);
      },
    );

    await t.step("invalid input exits 2 before any call", async () => {
      h.reply(() => json(200, {}));
      assertFails(
        await h.pilot("superuser", ["secret", "put", "/abs", "k=v"]),
        2,
        /^Invalid secret path "\/abs"/,
      );
      assertFails(
        await h.pilot("superuser", ["secret", "delete", "a", "-v", "1,x"]),
        2,
        /--versions must be a whole number/,
      );
      assert.equal(h.seen.length, 0);
    });

    await t.step("an unreachable nexus exits 6", async () => {
      const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (closed.addr as Deno.NetAddr).port;
      closed.close();
      const run = await h.pilot("superuser", ["secret", "list"], {
        env: { SPIKE_NEXUS_API_URL: `https://127.0.0.1:${port}` },
      });
      assertFails(
        run,
        6,
        /^Cannot reach SPIKE Nexus at https:\/\/127\.0\.0\.1:\d+: /,
      );
    });

    await t.step(
      "a server that is not nexus is refused with exit 6",
      async () => {
        source.rotate(
          await issueMaterial(ca, "spiffe://spike.ist/spike/keeper/1"),
        );
        try {
          h.reply(() => json(200, { keys: [] }));
          const run = await h.pilot("superuser", ["secret", "list"]);
          assertFails(run, 6, /not authorized/);
          assert.equal(h.seen.length, 0, "nothing sent to a wrong server");
        } finally {
          source.rotate(
            await issueMaterial(ca, "spiffe://spike.ist/spike/nexus"),
          );
        }
      },
    );

    await t.step("secret put sends path, values and cas", async () => {
      h.reply(() => json(200, {}));
      const run = await h.pilot("superuser", [
        "secret",
        "put",
        "apps/db",
        "user=admin",
        "pass=a=b",
        "--cas",
        "0",
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, "OK\n");
      assert.equal(h.seen[0]!.path, "/v1/store/secrets");
      assert.equal(h.seen[0]!.action, "");
      assert.equal(
        h.seen[0]!.peer,
        "spiffe://spike.ist/spike/pilot/role/superuser",
      );
      assert.deepEqual(bodyJson(h.seen[0]), {
        path: "apps/db",
        values: { user: "admin", pass: "a=b" },
        cas: 0,
      });
    });

    await t.step("a compare-and-set conflict exits 7", async () => {
      h.reply(() => json(409, { err: "api_conflict" }));
      assertFails(
        await h.pilot("superuser", [
          "secret",
          "put",
          "apps/db",
          "a=1",
          "--cas",
          "3",
        ]),
        7,
        /^Secret "apps\/db" is not at version 3/,
      );
    });

    await t.step("secret get prints values, one value, or json", async () => {
      h.reply(() => json(200, { data: { user: "admin", pass: "s3cret" } }));
      const all = await h.pilot("superuser", [
        "secret",
        "get",
        "apps/db",
        "-v",
        "2",
      ]);
      assert.equal(all.code, 0, all.stderr);
      assert.equal(all.stdout, "user: admin\npass: s3cret\n");
      assert.equal(h.seen[0]!.action, "get");
      assert.deepEqual(bodyJson(h.seen[0]), { path: "apps/db", version: 2 });
      const one = await h.pilot("superuser", [
        "secret",
        "get",
        "apps/db",
        "pass",
      ]);
      assert.equal(one.stdout, "s3cret\n");
      const asJson = await h.pilot("superuser", [
        "secret",
        "get",
        "apps/db",
        "-f",
        "json",
      ]);
      assert.deepEqual(JSON.parse(asJson.stdout), {
        user: "admin",
        pass: "s3cret",
      });
      assertFails(
        await h.pilot("superuser", ["secret", "get", "apps/db", "nokey"]),
        3,
        /^Secret "apps\/db" has no key "nokey"$/,
      );
    });

    await t.step(
      "secret get <key> writes the value and exactly one newline",
      async () => {
        h.reply(() => json(200, { data: { a: "v", b: "v\n", c: "" } }));
        const one = async (key: string) => {
          const run = await h.pilot("superuser", [
            "secret",
            "get",
            "apps/db",
            key,
          ]);
          assert.equal(run.code, 0, run.stderr);
          return run.stdout;
        };
        assert.equal(await one("a"), "v\n");
        assert.equal(await one("b"), "v\n\n");
        assert.equal(await one("c"), "\n");
      },
    );

    await t.step("statuses map to exit codes 3, 4 and 5", async () => {
      h.reply(() => json(404, { err: "api_not_found" }));
      assertFails(
        await h.pilot("superuser", ["secret", "get", "apps/x"]),
        3,
        /^Secret "apps\/x" not found \(or its current version is deleted\)$/,
      );
      h.reply(() => json(401, { err: "access_unauthorized" }));
      assertFails(
        await h.pilot("web", ["secret", "get", "apps/x"]),
        4,
        /refused this identity \(spiffe:\/\/spike\.ist\/app\/web\)/,
      );
      h.reply(() => json(503, { err: "state_not_ready" }));
      assertFails(
        await h.pilot("superuser", ["secret", "list"]),
        5,
        /^SPIKE Nexus is locked: it is waiting for its root key/,
      );
    });

    await t.step("secret delete sends trimmed versions", async () => {
      const live = { deletedTime: null, createdTime: "2026-01-01T00:00:00Z" };
      h.reply((req) =>
        json(
          200,
          req.action === "get"
            ? {
              metadata: { currentVersion: 3 },
              versions: {
                "1": { version: 1, ...live },
                "2": { version: 2, ...live },
                "3": { version: 3, ...live },
              },
            }
            : {},
        )
      );
      const run = await h.pilot("superuser", [
        "secret",
        "delete",
        "apps/db",
        "-v",
        "1, 2",
      ]);
      assert.equal(run.code, 0, run.stderr);
      // Metadata before and after, to report what changed.
      assert.deepEqual(h.seen.map((s) => s.action), ["get", "delete", "get"]);
      assert.deepEqual(bodyJson(h.seen[1]), {
        path: "apps/db",
        versions: [1, 2],
      });
      assert.equal(
        run.stdout,
        'Deleted versions 1 and 2 of secret "apps/db"; version 3 is current now\n',
      );
    });

    await t.step(
      "policy create refuses an existing name with exit 7",
      async () => {
        h.reply(() => json(409, { err: "api_conflict" }));
        const args = [
          "policy",
          "create",
          "--name",
          "web",
          "--spiffeid-pattern",
          "^spiffe://spike\\.ist/app/web$",
          "--path-pattern",
          "^apps/web/.*$",
          "--permissions",
          "read,list",
        ];
        assertFails(
          await h.pilot("superuser", args),
          7,
          /^Policy "web" already exists/,
        );
        // Nexus decides: one create call, no client-side list.
        assert.deepEqual(h.seen.map((s) => s.action), ["create"]);
        h.reply(() => json(200, {}));
        const created = await h.pilot("superuser", args);
        assert.equal(created.code, 0, created.stderr);
        assert.equal(created.stdout, 'Policy "web" created\n');
        assert.deepEqual(bodyJson(h.seen[0]), {
          name: "web",
          spiffeidPattern: "^spiffe://spike\\.ist/app/web$",
          pathPattern: "^apps/web/.*$",
          permissions: ["read", "list"],
        });
      },
    );

    await t.step("policy apply reads a YAML file", async () => {
      await Deno.writeTextFile(
        `${dir}/policy.yaml`,
        "name: ops\nspiffeidPattern: ^spiffe://spike\\.ist/ops/.*$\npathPattern: ^ops/.*$\npermissions: [read, write]\n",
      );
      h.reply(() => json(200, {}));
      const run = await h.pilot("superuser", [
        "policy",
        "apply",
        "--file",
        `${dir}/policy.yaml`,
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, 'Policy "ops" applied\n');
      assert.deepEqual(bodyJson(h.seen[0]).permissions, ["read", "write"]);
    });

    await t.step("policy delete from a pipe needs --yes", async () => {
      h.reply(() => json(200, {}));
      assertFails(
        await h.pilot("superuser", ["policy", "delete", "ops"], {
          stdin: "y\n",
        }),
        2,
        /pass --yes/,
      );
      assert.equal(h.seen.length, 0);
      const run = await h.pilot("superuser", [
        "policy",
        "delete",
        "ops",
        "--yes",
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(bodyJson(h.seen[0]), { id: "ops" });
    });

    await t.step(
      "cipher encrypt streams bytes and writes a 0600 file",
      async () => {
        const sealed = new Uint8Array([1, ...new Array(12).fill(9), 5, 6, 7]);
        h.reply(() => ({
          status: 200,
          headers: { "content-type": "application/octet-stream" },
          body: sealed.slice(),
        }));
        const run = await h.pilot("superuser", [
          "cipher",
          "encrypt",
          "-o",
          `${dir}/out.bin`,
        ], {
          stdin: "plain",
        });
        assert.equal(run.code, 0, run.stderr);
        assert.equal(h.seen[0]!.contentType, "application/octet-stream");
        assert.equal(new TextDecoder().decode(h.seen[0]!.body), "plain");
        assert.deepEqual(await Deno.readFile(`${dir}/out.bin`), sealed);
        assert.equal((await Deno.stat(`${dir}/out.bin`)).mode! & 0o777, 0o600);
      },
    );

    await t.step(
      "cipher --json output feeds cipher decrypt --json",
      async () => {
        const sealed = {
          version: 1,
          nonce: "AAAAAAAAAAAAAAAA",
          ciphertext: "YWJjZGVm",
        };
        h.reply(() => json(200, sealed));
        const enc = await h.pilot(
          "superuser",
          ["cipher", "encrypt", "--json"],
          { stdin: "hi" },
        );
        assert.equal(enc.code, 0, enc.stderr);
        assert.deepEqual(JSON.parse(enc.stdout), sealed);
        assert.deepEqual(bodyJson(h.seen[0]), { plaintext: "aGk=" });
        h.reply(() => json(200, { plaintext: "aGk=" }));
        const dec = await h.pilot(
          "superuser",
          ["cipher", "decrypt", "--json"],
          {
            stdin: enc.stdout,
          },
        );
        assert.equal(dec.code, 0, dec.stderr);
        assert.equal(dec.stdout, "hi");
        assert.deepEqual(bodyJson(h.seen[0]), sealed);
      },
    );

    await t.step(
      "cipher decrypt --json sends nexus canonical base64",
      async () => {
        h.reply(() => json(200, { plaintext: "aGk=" }));
        const dec = await h.pilot(
          "superuser",
          ["cipher", "decrypt", "--json"],
          {
            stdin: JSON.stringify({
              version: 1,
              nonce: " AAAAAAAA\nAAAAAAAA ",
              ciphertext: "YWJjZA",
            }),
          },
        );
        assert.equal(dec.code, 0, dec.stderr);
        assert.deepEqual(bodyJson(h.seen[0]), {
          version: 1,
          nonce: "AAAAAAAAAAAAAAAA",
          ciphertext: "YWJjZA==",
        });
      },
    );

    await t.step("operator recover needs the recover role", async () => {
      h.reply(() => json(200, {}));
      assertFails(
        await h.pilot("superuser", ["operator", "recover"]),
        4,
        /^The recover command needs a SPIFFE ID of spiffe:\/\/spike\.ist\/spike\/pilot\/role\/recover; this SVID is spiffe:\/\/spike\.ist\/spike\/pilot\/role\/superuser$/,
      );
      assert.equal(h.seen.length, 0);
    });

    await t.step("operator recover writes the shard files", async () => {
      await Deno.mkdir(`${dir}/recover`, { recursive: true, mode: 0o700 });
      await Deno.writeTextFile(`${dir}/recover/spike.recovery.7.txt`, "old");
      h.reply(() =>
        json(200, { shards: { "1": SHARD1, "2": new Array(32).fill(255) } })
      );
      const run = await h.pilot("recover", ["operator", "recover"]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /SPIKE Recovery shards saved/);
      assert.equal(
        await Deno.readTextFile(`${dir}/recover/spike.recovery.1.txt`),
        `spike:1:${HEX1}`,
      );
      assert.equal(
        await Deno.readTextFile(`${dir}/recover/spike.recovery.2.txt`),
        `spike:2:${"ff".repeat(32)}`,
      );
      await assert.rejects(() =>
        Deno.stat(`${dir}/recover/spike.recovery.7.txt`)
      );
      assert.equal((await Deno.stat(`${dir}/recover`)).mode! & 0o777, 0o700);
    });

    await t.step(
      "operator restore sends the piped shard as id and bytes",
      async () => {
        h.reply(() =>
          json(200, { collected: 1, remaining: 1, restored: false })
        );
        const run = await h.pilot("restore", ["operator", "restore"], {
          stdin: `spike:1:${HEX1}\n`,
        });
        assert.equal(run.code, 0, run.stderr);
        assert.equal(h.seen[0]!.path, "/v1/operator/restore");
        assert.deepEqual(bodyJson(h.seen[0]), { id: 1, shard: SHARD1 });
        assert.match(run.stdout, /^Shards collected: 1\nShards remaining: 1\n/);
        h.reply(() =>
          json(200, { collected: 2, remaining: 0, restored: true })
        );
        const done = await h.pilot("restore", ["operator", "restore"], {
          stdin: `spike:2:${HEX1}`,
        });
        assert.match(done.stdout, /^SPIKE is now restored and ready to use\./);
      },
    );

    await t.step(
      "operator restore maps wrong shards, unlocked nexus and bad input",
      async () => {
        h.reply(() => json(400, { err: "api_bad_request" }));
        assertFails(
          await h.pilot("restore", ["operator", "restore"], {
            stdin: `spike:1:${HEX1}`,
          }),
          2,
          /^SPIKE Nexus rejected shard 1 \(HTTP 400, api_bad_request\)$/,
        );
        // A reason from nexus is shown, on one line whatever it holds.
        h.reply(() =>
          json(400, {
            err: "api_bad_request",
            reason: "It is not a shard of this installation\n\x1b[2Jspoof",
          })
        );
        assertFails(
          await h.pilot("restore", ["operator", "restore"], {
            stdin: `spike:1:${HEX1}`,
          }),
          2,
          /^SPIKE Nexus rejected shard 1: it is not a shard of this installation \[2Jspoof$/,
        );
        // 409 is an unlocked nexus or a repeated shard; the state says which.
        for (
          const [state, message] of [
            ["unlocked", /^SPIKE Nexus is already unlocked/],
            ["locked", /^SPIKE Nexus already holds shard 1 from this restore/],
          ] as const
        ) {
          h.reply((req) =>
            req.path === "/v1/operator/status"
              ? json(200, { state })
              : json(409, { err: "api_conflict" })
          );
          assertFails(
            await h.pilot("restore", ["operator", "restore"], {
              stdin: `spike:1:${HEX1}`,
            }),
            7,
            message,
          );
          assert.deepEqual(h.seen.map((r) => r.path), [
            "/v1/operator/restore",
            "/v1/operator/status",
          ]);
        }
        h.reply(() => json(200, { collected: 1, remaining: 1 }));
        const secretish = "ab".repeat(31);
        const bad = await h.pilot("restore", ["operator", "restore"], {
          stdin: `spike:1:${secretish}`,
        });
        assertFails(bad, 2, /^Invalid recovery shard: /);
        assert.ok(!bad.stderr.includes(secretish));
        assert.equal(h.seen.length, 0, "bad input is not sent");
        assertFails(
          await h.pilot("recover", ["operator", "restore"], {
            stdin: `spike:1:${HEX1}`,
          }),
          4,
          /^The restore command needs a SPIFFE ID of .*role\/restore/,
        );
      },
    );

    await t.step(
      "operator drill reports each file and exits 0 only if it would restore",
      async () => {
        await Deno.writeTextFile(
          `${dir}/recover/spike.recovery.3.txt`,
          "garbage",
        );
        let wouldRestore = true;
        h.reply((req) =>
          req.path === "/v1/operator/status"
            ? json(200, {
              state: "unlocked",
              backend: "sqlite",
              threshold: 2,
              shares: 3,
            })
            : json(200, {
              valid: [1, 2],
              invalid: [],
              wouldRestore,
              threshold: 2,
            })
        );
        const run = await h.pilot("restore", ["operator", "drill"]);
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(h.seen.map((s) => s.path), [
          "/v1/operator/status",
          "/v1/operator/drill",
        ]);
        assert.deepEqual(
          bodyJson(h.seen[1]).shards.map((s: { id: number }) => s.id),
          [1, 2],
        );
        assert.match(
          run.stdout,
          /^OK {9}.*spike\.recovery\.1\.txt \(shard 1\)$/m,
        );
        assert.match(run.stdout, /^NOT VALID {2}.*spike\.recovery\.3\.txt: /m);
        assert.match(
          run.stdout,
          /would restore SPIKE Nexus \(2 valid, threshold 2\)/,
        );
        wouldRestore = false;
        const fail = await h.pilot("restore", ["operator", "drill"]);
        assert.equal(fail.code, 1);
        assert.match(fail.stdout, /would NOT restore/);
      },
    );

    await t.step("status prints state and keepers", async () => {
      h.reply(() =>
        json(200, {
          state: "locked",
          backend: "sqlite",
          threshold: 2,
          shares: 3,
          restore: { collected: 0, remaining: 2 },
          keepers: [{
            index: 1,
            url: "https://k:1",
            reachable: false,
            holdsShard: null,
          }],
        })
      );
      const run = await h.pilot("superuser", ["status"]);
      assert.equal(run.code, 0, run.stderr);
      // An operator asking wants the keepers as they are now.
      assert.deepEqual(bodyJson(h.seen[0]), { probe: true });
      assert.match(run.stdout, /^State: {4}locked\n/);
      assert.match(run.stdout, /Restore: {2}0 collected, 2 remaining/);
      assert.match(run.stdout, / {2}1 {2}https:\/\/k:1 {2}unreachable/);
      const yaml = await h.pilot("superuser", ["status", "-f", "yaml"]);
      assert.match(yaml.stdout, /^state: locked\n/);
    });
  } finally {
    await server.close();
    source.close();
    await Deno.remove(dir, { recursive: true });
  }
});
