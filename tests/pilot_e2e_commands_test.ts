// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Every `spike pilot` command as a real, scoped process against a real
 * nexus (memory backend: keepers do not matter here): secrets, policies,
 * the cipher in both modes, status, and `--help` on every command.
 */
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import { fails, ok } from "./pilot_e2e_support.ts";

const HELP_COMMANDS: string[][] = [
  [],
  ["secret"],
  ["secret", "put"],
  ["secret", "get"],
  ["secret", "delete"],
  ["secret", "undelete"],
  ["secret", "list"],
  ["secret", "metadata"],
  ["secret", "metadata", "get"],
  ["policy"],
  ["policy", "create"],
  ["policy", "apply"],
  ["policy", "get"],
  ["policy", "list"],
  ["policy", "delete"],
  ["cipher"],
  ["cipher", "encrypt"],
  ["cipher", "decrypt"],
  ["operator"],
  ["operator", "recover"],
  ["operator", "restore"],
  ["operator", "drill"],
  ["operator", "push"],
  ["status"],
];

Deno.test("every pilot command works against a real nexus", async (t) => {
  const cluster = await Cluster.create({ backend: "memory", logLevel: "WARN" });
  const su = (args: string[], options?: { stdin?: string }) =>
    cluster.pilot("superuser", args, options);
  try {
    await t.step(
      "--help on every command exits 0 and prints to stdout",
      async () => {
        // No nexus is needed for help; run them side by side.
        const results = await Promise.all(
          HELP_COMMANDS.map((args) => su([...args, "--help"])),
        );
        results.forEach((res, i) => {
          const name = ["pilot", ...HELP_COMMANDS[i]!].join(" ");
          assert.equal(res.code, 0, `${name} --help: ${res.stderr}`);
          assert.match(res.stdout, /Usage:/, `${name} --help`);
          assert.equal(res.stderr, "", `${name} --help`);
        });
        assert.match(results[0]!.stdout, /Exit codes:/);
      },
    );

    await cluster.startNexus();
    await cluster.waitUnlocked();

    await t.step("status reports an unlocked nexus", async () => {
      assert.match(ok(await su(["status"]), "status"), /State:\s+unlocked/);
      const json = JSON.parse(ok(await su(["status", "-f", "json"]), "status"));
      assert.equal(json.state, "unlocked");
      assert.equal(json.backend, "memory");
      const yaml = ok(await su(["status", "-f", "yaml"]), "status");
      assert.match(yaml, /^state: unlocked$/m);
    });

    await t.step("secret put, get, versions, keys and formats", async () => {
      assert.equal(
        ok(
          await su(["secret", "put", "apps/db", "user=admin", "pass=one"]),
          "put",
        ),
        "OK\n",
      );
      ok(
        await su(["secret", "put", "apps/db", "user=admin", "pass=two"]),
        "put",
      );
      assert.equal(
        ok(await su(["secret", "get", "apps/db"]), "get"),
        "user: admin\npass: two\n",
      );
      assert.equal(
        ok(await su(["secret", "get", "apps/db", "-v", "1"]), "get -v 1"),
        "user: admin\npass: one\n",
      );
      assert.equal(
        ok(await su(["secret", "get", "apps/db", "pass"]), "get key"),
        "two\n",
      );
      assert.deepEqual(
        JSON.parse(
          ok(await su(["secret", "get", "apps/db", "-f", "json"]), "json"),
        ),
        { user: "admin", pass: "two" },
      );
      assert.equal(
        ok(await su(["secret", "get", "apps/db", "-f", "yaml"]), "yaml"),
        "user: admin\npass: two\n",
      );
      fails(
        await su(["secret", "get", "apps/db", "nokey"]),
        3,
        /has no key "nokey"/,
      );
      fails(
        await su(["secret", "put", "apps/db", "pass=three", "--cas", "1"]),
        7,
        /not at version 1/,
      );
    });

    await t.step("secret list and metadata get", async () => {
      ok(await su(["secret", "put", "apps/web", "token=t"]), "put");
      assert.equal(
        ok(await su(["secret", "list"]), "list"),
        "- apps/db\n- apps/web\n",
      );
      assert.deepEqual(
        JSON.parse(ok(await su(["secret", "list", "-f", "json"]), "list")),
        ["apps/db", "apps/web"],
      );
      assert.equal(
        ok(await su(["secret", "list", "-f", "yaml"]), "list"),
        "- apps/db\n- apps/web\n",
      );
      const human = ok(
        await su(["secret", "metadata", "get", "apps/db"]),
        "md",
      );
      assert.match(human, /Current Version : 2/);
      assert.match(human, /Version 1:/);
      assert.match(human, /Version 2:/);
      const meta = JSON.parse(
        ok(
          await su(["secret", "metadata", "get", "apps/db", "-f", "json"]),
          "md",
        ),
      );
      assert.equal(meta.metadata.currentVersion, 2);
      assert.deepEqual(Object.keys(meta.versions).sort(), ["1", "2"]);
      assert.match(
        ok(
          await su(["secret", "metadata", "get", "apps/db", "-f", "yaml"]),
          "md",
        ),
        /currentVersion: 2/,
      );
    });

    await t.step("secret delete and undelete", async () => {
      // Deleting the current version makes the newest live one current:
      // delete says so, and warns that an older value is live again.
      let res = await su(["secret", "delete", "apps/db"]);
      assert.equal(
        ok(res, "delete"),
        'Deleted version 2 of secret "apps/db"; version 1 is current now\n',
      );
      assert.match(
        res.stderr,
        /^Warning: secret "apps\/db" now reads version 1, an older value; "spike pilot secret undelete apps\/db" brings back version 2\n$/,
      );
      assert.equal(
        ok(await su(["secret", "get", "apps/db", "pass"]), "get"),
        "one\n",
      );
      fails(await su(["secret", "get", "apps/db", "-v", "2"]), 3, /not found/);
      // undelete without -v restores what the last delete removed.
      assert.equal(
        ok(await su(["secret", "undelete", "apps/db"]), "undelete"),
        'Restored version 2 of secret "apps/db"; version 2 is current now\n',
      );
      assert.equal(
        ok(await su(["secret", "get", "apps/db", "pass"]), "get"),
        "two\n",
      );

      // Repeated deletes step back, repeated undeletes step forward again.
      ok(await su(["secret", "put", "apps/db", "pass=three"]), "put");
      for (const [deleted, current] of [[3, 2], [2, 1]]) {
        assert.match(
          ok(await su(["secret", "delete", "apps/db"]), "delete"),
          new RegExp(
            `^Deleted version ${deleted} .*; version ${current} is current now`,
          ),
        );
      }
      for (const restored of [2, 3]) {
        assert.match(
          ok(await su(["secret", "undelete", "apps/db"]), "undelete"),
          new RegExp(`^Restored version ${restored} `),
        );
      }
      assert.equal(
        ok(await su(["secret", "get", "apps/db", "pass"]), "get"),
        "three\n",
      );

      // Deleting several versions at once, then undeleting them together.
      assert.equal(
        ok(await su(["secret", "delete", "apps/db", "-v", "1, 3"]), "delete"),
        'Deleted versions 1 and 3 of secret "apps/db"; version 2 is current now\n',
      );
      assert.equal(
        ok(await su(["secret", "undelete", "apps/db"]), "undelete"),
        'Restored versions 1 and 3 of secret "apps/db"; version 3 is current now\n',
      );

      // A version that does not exist: nothing deleted, exit 3.
      fails(
        await su(["secret", "delete", "apps/db", "-v", "9"]),
        3,
        /^Version 9 of secret "apps\/db" not found: nothing deleted/,
      );
      fails(
        await su(["secret", "delete", "apps/none"]),
        3,
        /Secret "apps\/none" not found/,
      );
      fails(
        await su(["secret", "undelete", "apps/db"]),
        3,
        /^Nothing to undelete: no version of secret "apps\/db" is deleted/,
      );

      // With no live version left, delete prints the exact undelete command.
      res = await su(["secret", "delete", "apps/db", "-v", "1,2,3"]);
      assert.equal(
        ok(res, "delete all"),
        'Deleted versions 1, 2 and 3 of secret "apps/db"; no version is live now\n' +
          "Bring it back with: spike pilot secret undelete apps/db -v 1,2,3\n",
      );
      fails(
        await su(["secret", "get", "apps/db"]),
        3,
        /Secret "apps\/db" not found/,
      );
      assert.equal(
        ok(
          await su(["secret", "undelete", "apps/db", "-v", "1,2,3"]),
          "undelete -v",
        ),
        'Restored versions 1, 2 and 3 of secret "apps/db"; version 3 is current now\n',
      );
      // Without -v nexus can only restore the newest deleted version, and
      // undelete says which stay deleted.
      ok(await su(["secret", "delete", "apps/db", "-v", "1,2,3"]), "delete");
      assert.equal(
        ok(await su(["secret", "undelete", "apps/db"]), "undelete"),
        'Restored version 3 of secret "apps/db"; version 3 is current now\n' +
          "No version was live, so nexus restored the newest deleted one; versions 1 and 2 stay deleted (spike pilot secret undelete apps/db -v 1,2 restores them)\n",
      );
      ok(await su(["secret", "undelete", "apps/db", "-v", "1,2"]), "undelete");

      // A one-version secret round-trips with plain delete and undelete.
      ok(await su(["secret", "put", "apps/one", "k=v"]), "put");
      assert.equal(
        ok(await su(["secret", "delete", "apps/one"]), "delete"),
        'Deleted version 1 of secret "apps/one"; no version is live now\n' +
          "Bring it back with: spike pilot secret undelete apps/one\n",
      );
      assert.equal(
        ok(await su(["secret", "undelete", "apps/one"]), "undelete"),
        'Restored version 1 of secret "apps/one"; version 1 is current now\n',
      );
      assert.equal(
        ok(await su(["secret", "get", "apps/one", "k"]), "g"),
        "v\n",
      );
    });

    await t.step(
      "a caller who may write but not read still deletes and undeletes",
      async () => {
        await cluster.issue("writer", "spiffe://spike.ist/workload/writer");
        ok(
          await su([
            "policy",
            "create",
            "--name",
            "writer",
            "--spiffeid-pattern",
            "^spiffe://spike\\.ist/workload/writer$",
            "--path-pattern",
            "^apps/w$",
            "--permissions",
            "write",
          ]),
          "create",
        );
        ok(await su(["secret", "put", "apps/w", "k=1"]), "put");
        ok(await su(["secret", "put", "apps/w", "k=2"]), "put");
        const writer = (args: string[]) => cluster.pilot("writer", args);
        assert.equal(
          ok(await writer(["secret", "delete", "apps/w"]), "delete"),
          'Deleted the current version of secret "apps/w"\n',
        );
        assert.equal(
          ok(await writer(["secret", "undelete", "apps/w", "-v", "2"]), "un"),
          'Restored version 2 of secret "apps/w"\n',
        );
        assert.equal(
          ok(await su(["secret", "get", "apps/w", "k"]), "g"),
          "2\n",
        );
        ok(await su(["policy", "delete", "writer", "--yes"]), "delete");
      },
    );

    await t.step("policy create refuses an existing name", async () => {
      const flags = [
        "--spiffeid-pattern",
        "^spiffe://spike\\.ist/workload/web$",
        "--path-pattern",
        "^apps/web$",
        "--permissions",
        "read,list",
      ];
      assert.equal(
        ok(await su(["policy", "create", "--name", "web", ...flags]), "create"),
        'Policy "web" created\n',
      );
      fails(
        await su(["policy", "create", "--name", "web", ...flags]),
        7,
        /Policy "web" already exists/,
      );
      const policy = JSON.parse(
        ok(await su(["policy", "get", "web", "-f", "json"]), "get"),
      );
      assert.equal(policy.name, "web");
      assert.equal(policy.pathPattern, "^apps/web$");
      assert.deepEqual(policy.permissions, ["read", "list"]);
      assert.match(
        ok(await su(["policy", "get", "web"]), "get"),
        /Permissions:\s+read, list/,
      );
    });

    await t.step(
      "policy apply from a YAML file and from a JSON file",
      async () => {
        const yamlFile = `${cluster.dir}/billing.yaml`;
        await Deno.writeTextFile(
          yamlFile,
          [
            "name: billing",
            "spiffeidPattern: ^spiffe://spike\\.ist/workload/billing$",
            "pathPattern: ^billing/.*$",
            "permissions:",
            "  - read",
            "",
          ].join("\n"),
        );
        assert.equal(
          ok(await su(["policy", "apply", "--file", yamlFile]), "apply yaml"),
          'Policy "billing" applied\n',
        );
        let policy = JSON.parse(
          ok(await su(["policy", "get", "billing", "-f", "json"]), "get"),
        );
        assert.deepEqual(policy.permissions, ["read"]);
        assert.equal(policy.pathPattern, "^billing/.*$");

        const jsonFile = `${cluster.dir}/billing.json`;
        await Deno.writeTextFile(
          jsonFile,
          JSON.stringify({
            name: "billing",
            spiffeidPattern: "^spiffe://spike\\.ist/workload/billing$",
            pathPattern: "^billing/.*$",
            permissions: ["read", "write"],
          }),
        );
        ok(await su(["policy", "apply", "--file", jsonFile]), "apply json");
        policy = JSON.parse(
          ok(await su(["policy", "get", "billing", "-f", "json"]), "get"),
        );
        assert.deepEqual(policy.permissions, ["read", "write"]);
        assert.match(
          ok(await su(["policy", "get", "billing", "-f", "yaml"]), "get"),
          /^name: billing$/m,
        );
      },
    );

    await t.step("policy list and delete --yes", async () => {
      assert.equal(ok(await su(["policy", "list"]), "list"), "billing\nweb\n");
      assert.deepEqual(
        JSON.parse(ok(await su(["policy", "list", "-f", "json"]), "list")),
        ["billing", "web"],
      );
      fails(
        await su(["policy", "delete", "web"]),
        2,
        /without confirmation.*--yes/,
      );
      assert.equal(
        ok(await su(["policy", "delete", "web", "--yes"]), "delete"),
        'Policy "web" deleted\n',
      );
      fails(await su(["policy", "get", "web"]), 3, /Policy "web" not found/);
      assert.equal(ok(await su(["policy", "list"]), "list"), "billing\n");
    });

    await t.step("cipher encrypt and decrypt through files", async () => {
      const plain = new Uint8Array(3000).map((_, i) => (i * 7) % 256);
      const input = `${cluster.dir}/plain.bin`;
      const sealed = `${cluster.dir}/sealed.bin`;
      const back = `${cluster.dir}/back.bin`;
      await Deno.writeFile(input, plain);
      assert.equal(
        ok(await su(["cipher", "encrypt", "-f", input, "-o", sealed]), "enc"),
        "",
      );
      const ciphertext = await Deno.readFile(sealed);
      assert.equal(ciphertext[0], 1);
      assert.equal(ciphertext.length, 1 + 12 + plain.length + 16);
      assert.equal((await Deno.stat(sealed)).mode! & 0o777, 0o600);
      ok(await su(["cipher", "decrypt", "-f", sealed, "-o", back]), "dec");
      assert.deepEqual(await Deno.readFile(back), plain);
    });

    await t.step("cipher encrypt from stdin, decrypt to stdout", async () => {
      const sealed = `${cluster.dir}/stdin.bin`;
      ok(
        await su(["cipher", "encrypt", "-o", sealed], { stdin: "hello stdin" }),
        "enc",
      );
      assert.equal(
        ok(await su(["cipher", "decrypt", "-f", sealed]), "dec"),
        "hello stdin",
      );
      // Stream decrypt from stdin refuses what is not ciphertext.
      fails(
        await su(["cipher", "decrypt"], { stdin: "not ciphertext at all!" }),
        2,
        /not SPIKE ciphertext/,
      );
    });

    await t.step(
      "cipher --json mode round-trips through stdin and stdout",
      async () => {
        const sealed = ok(
          await su(["cipher", "encrypt", "--json"], { stdin: "json mode ✓" }),
          "enc --json",
        );
        const object = JSON.parse(sealed);
        assert.equal(object.version, 1);
        assert.equal(typeof object.nonce, "string");
        assert.equal(typeof object.ciphertext, "string");
        assert.equal(
          ok(
            await su(["cipher", "decrypt", "--json"], { stdin: sealed }),
            "dec",
          ),
          "json mode ✓",
        );
        // A damaged ciphertext is refused by nexus as invalid input.
        const bytes = Uint8Array.fromBase64(object.ciphertext);
        bytes[0]! ^= 1;
        const damaged = JSON.stringify({
          ...object,
          ciphertext: bytes.toBase64(),
        });
        fails(
          await su(["cipher", "decrypt", "--json"], { stdin: damaged }),
          2,
          /could not decrypt/,
        );
      },
    );
  } finally {
    await cluster.close();
  }
});
