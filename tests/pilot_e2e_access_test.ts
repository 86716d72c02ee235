// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike pilot` as real processes against a real SQLite nexus with
 * keepers: the role rules (checked in pilot, and again in nexus), and the
 * failures an operator meets — not found, locked, unreachable — each one
 * sentence with its own exit code, never a stack trace.
 */
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import { fails, ok } from "./pilot_e2e_support.ts";

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

const SHARD_LINE = `spike:1:${"ab".repeat(32)}\n`;
const ZERO_SHARD = { id: 1, shard: new Array(32).fill(7) };

Deno.test("pilot enforces roles and reports not found, locked and unreachable", async (t) => {
  const cluster = await Cluster.create({ logLevel: "WARN" });
  try {
    await cluster.start();
    await cluster.waitUnlocked();
    ok(
      await cluster.pilot("superuser", ["secret", "put", "apps/db", "pw=s3"]),
      "put",
    );

    await t.step("the superuser cannot run recover or restore", async () => {
      fails(
        await cluster.pilot("superuser", ["operator", "recover"]),
        4,
        /needs a SPIFFE ID of spiffe:\/\/[^ ]*\/spike\/pilot\/role\/recover/,
      );
      fails(
        await cluster.pilot("superuser", ["operator", "restore"], {
          stdin: SHARD_LINE,
        }),
        4,
        /needs a SPIFFE ID of spiffe:\/\/[^ ]*\/spike\/pilot\/role\/restore/,
      );
      fails(
        await cluster.pilot("superuser", [
          "operator",
          "drill",
          `${cluster.dir}/none.txt`,
        ]),
        4,
        /role\/restore/,
      );
      // Nexus refuses on its own, whatever a client checks.
      const recover = await cluster.call("superuser", "/v1/operator/recover");
      assert.equal(recover.status, 401);
      assert.equal(recover.body?.shards, undefined);
      const restore = await cluster.call(
        "superuser",
        "/v1/operator/restore",
        ZERO_SHARD,
      );
      assert.equal(restore.status, 401);
      const drill = await cluster.call("superuser", "/v1/operator/drill", {
        shards: [ZERO_SHARD],
      });
      assert.equal(drill.status, 401);
    });

    await t.step(
      "the recover and restore identities cannot read secrets",
      async () => {
        for (const role of ["recover", "restore"]) {
          fails(
            await cluster.pilot(role, ["secret", "get", "apps/db"]),
            4,
            new RegExp(
              `refused this identity \\(spiffe://[^)]*/role/${role}\\)`,
            ),
          );
        }
        fails(
          await cluster.pilot("recover", ["secret", "put", "apps/db", "pw=x"]),
          4,
          /refused this identity/,
        );
      },
    );

    await t.step(
      "a workload without a policy is refused until one grants it",
      async () => {
        const id = "spiffe://spike.ist/workload/web";
        await cluster.issue("web", id);
        fails(
          await cluster.pilot("web", ["secret", "get", "apps/db"]),
          4,
          /refused this identity \(spiffe:\/\/spike\.ist\/workload\/web\)/,
        );
        fails(
          await cluster.pilot("web", ["secret", "list"]),
          4,
          /refused this identity/,
        );
        ok(
          await cluster.pilot("superuser", [
            "policy",
            "create",
            "--name",
            "web",
            "--spiffeid-pattern",
            "^spiffe://spike\\.ist/workload/web$",
            "--path-pattern",
            "^apps/.*$",
            "--permissions",
            "read",
          ]),
          "policy create",
        );
        assert.equal(
          ok(
            await cluster.pilot("web", ["secret", "get", "apps/db", "pw"]),
            "get",
          ),
          "s3\n",
        );
        fails(
          await cluster.pilot("web", ["secret", "put", "apps/db", "pw=x"]),
          4,
          /refused this identity/,
        );
        fails(
          await cluster.pilot("web", ["policy", "list"]),
          4,
          /refused this identity/,
        );
      },
    );

    await t.step("a missing secret is not found (exit 3)", async () => {
      fails(
        await cluster.pilot("superuser", ["secret", "get", "apps/missing"]),
        3,
        /^Secret "apps\/missing" not found/,
      );
      fails(
        await cluster.pilot("superuser", [
          "secret",
          "get",
          "apps/db",
          "-v",
          "9",
        ]),
        3,
        /^Version 9 of secret "apps\/db" not found/,
      );
    });

    await t.step("a closed port is unreachable (exit 6)", async () => {
      const url = `https://127.0.0.1:${closedPort()}`;
      fails(
        await cluster.pilot("superuser", ["secret", "get", "apps/db"], {
          env: { SPIKE_NEXUS_API_URL: url },
        }),
        6,
        new RegExp(
          `^Cannot reach SPIKE Nexus at ${url.replaceAll(".", "\\.")}`,
        ),
      );
    });

    await t.step("a nexus without its keepers is locked (exit 5)", async () => {
      await cluster.stopNexus();
      for (let i = 1; i <= 3; i++) await cluster.stopKeeper(i);
      await cluster.startNexus();
      fails(
        await cluster.pilot("superuser", ["secret", "get", "apps/db"]),
        5,
        /^SPIKE Nexus is locked/,
      );
      fails(
        await cluster.pilot("superuser", ["secret", "list"]),
        5,
        /locked/,
      );
      // Status still answers while locked.
      const status = JSON.parse(
        ok(
          await cluster.pilot("superuser", ["status", "-f", "json"]),
          "status",
        ),
      );
      assert.equal(status.state, "locked");
      assert.match(
        ok(await cluster.pilot("superuser", ["status"]), "status"),
        /State:\s+locked/,
      );
    });

    await t.step("a stopped nexus is unreachable (exit 6)", async () => {
      await cluster.stopNexus();
      fails(
        await cluster.pilot("superuser", ["secret", "get", "apps/db"]),
        6,
        /^Cannot reach SPIKE Nexus at https:\/\/127\.0\.0\.1:\d+/,
      );
      fails(
        await cluster.pilot("superuser", ["status"]),
        6,
        /^Cannot reach SPIKE Nexus/,
      );
    });
  } finally {
    await cluster.close();
  }
});
