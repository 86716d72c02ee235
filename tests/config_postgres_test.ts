// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The postgres backend's settings: every invalid value stops the start
// with a sentence naming the variable (exit 2), sslmode is verify-full
// unless the URL says otherwise, and nothing falls back to plaintext.
import assert from "node:assert/strict";
import { ConfigError } from "../lib/config/env.ts";
import { readNexusConfig } from "../modes/nexus/config.ts";
import { permissionFlags } from "../scripts/permission_flags.ts";
import { runtimeEnv } from "../scripts/cluster.ts";
import { withEnv } from "./env_support.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const BASE = {
  SPIKE_NEXUS_BACKEND_STORE: "postgres",
  SPIKE_NEXUS_KEEPER_PEERS: "https://k1:8443,https://k2:8443,https://k3:8443",
  SPIKE_NEXUS_DATABASE_URL: undefined,
  SPIKE_NEXUS_DATABASE_CA: undefined,
  SPIKE_NEXUS_DATABASE_CLIENT_CERT: undefined,
  SPIKE_NEXUS_DATABASE_CLIENT_KEY: undefined,
  SPIKE_NEXUS_DATABASE_POOL_SIZE: undefined,
  SPIKE_NEXUS_DATABASE_STATEMENT_TIMEOUT: undefined,
  SPIKE_NEXUS_DATABASE_IDLE_TRANSACTION_TIMEOUT: undefined,
  SPIKE_NEXUS_POLICY_CHECK_INTERVAL: undefined,
  SPIKE_NEXUS_WRITE_FENCE_PRUNE_INTERVAL: undefined,
  SPIKE_NEXUS_REPLICA_NAME: undefined,
};

Deno.test("postgres settings: defaults and what the URL carries", async () => {
  await withEnv({
    ...BASE,
    SPIKE_NEXUS_DATABASE_URL:
      "postgres://spike_nexus:p%40ss@db.example/spike?options=-c%20search_path%3Dspike",
    SPIKE_NEXUS_DATABASE_CA: "/etc/spike/db-ca.pem",
  }, () => {
    const { replica } = readNexusConfig();
    assert.ok(replica);
    assert.equal(replica.database.sslMode, "verify-full");
    assert.equal(replica.database.port, 5432);
    assert.equal(replica.database.password, "p@ss");
    assert.equal(replica.database.options, "-c search_path=spike");
    assert.equal(replica.poolSize, 10);
    assert.equal(replica.statementTimeoutMs, 10_000);
    assert.equal(replica.idleTransactionTimeoutMs, 5_000);
    assert.equal(replica.policyCheckIntervalMs, 1_000);
    assert.equal(replica.fencePruneIntervalMs, 300_000);
  });
});

Deno.test("postgres settings: every invalid value names its variable", async () => {
  const url = "postgres://u@db/spike?sslmode=disable";
  const cases: [Record<string, string>, RegExp][] = [
    [{}, /SPIKE_NEXUS_DATABASE_URL is required/],
    [{ SPIKE_NEXUS_DATABASE_URL: "db:5432" }, /must start with postgres:\/\//],
    [{ SPIKE_NEXUS_DATABASE_URL: "postgres://db/spike" }, /must name the role/],
    [
      { SPIKE_NEXUS_DATABASE_URL: "postgres://u@db/spike" },
      /sslmode=verify-full needs the CA.*SPIKE_NEXUS_DATABASE_CA/,
    ],
    [
      { SPIKE_NEXUS_DATABASE_URL: "postgres://u@db/s?sslmode=prefer" },
      /sslmode=prefer, which may fall back to plaintext/,
    ],
    [
      { SPIKE_NEXUS_DATABASE_URL: "postgres://u@db/s?sslmode=bogus" },
      /sslmode=bogus/,
    ],
    [
      {
        SPIKE_NEXUS_DATABASE_URL: "postgres://u@db/s?target_session_attrs=any",
      },
      /parameter "target_session_attrs"/,
    ],
    [
      { SPIKE_NEXUS_DATABASE_URL: "postgres://u@a,b/s?sslmode=disable" },
      /several hosts/,
    ],
    [
      {
        SPIKE_NEXUS_DATABASE_URL: url,
        SPIKE_NEXUS_DATABASE_CLIENT_CERT: "svid",
      },
      /needs TLS, but SPIKE_NEXUS_DATABASE_URL has sslmode=disable/,
    ],
    [
      {
        SPIKE_NEXUS_DATABASE_URL: "postgres://u@db/s?sslmode=require",
        SPIKE_NEXUS_DATABASE_CLIENT_CERT: "/c.pem",
      },
      /SPIKE_NEXUS_DATABASE_CLIENT_CERT and SPIKE_NEXUS_DATABASE_CLIENT_KEY go together/,
    ],
    [
      {
        SPIKE_NEXUS_DATABASE_URL:
          "postgres://u@db/s?sslmode=verify-ca&sslrootcert=/a.pem",
        SPIKE_NEXUS_DATABASE_CA: "/b.pem",
      },
      /SPIKE_NEXUS_DATABASE_CA and the URL's parameter for it disagree/,
    ],
    [
      { SPIKE_NEXUS_DATABASE_URL: url, SPIKE_NEXUS_DATABASE_POOL_SIZE: "0" },
      /SPIKE_NEXUS_DATABASE_POOL_SIZE must be a whole number from 1 to 100/,
    ],
    [
      {
        SPIKE_NEXUS_DATABASE_URL: url,
        SPIKE_NEXUS_DATABASE_IDLE_TRANSACTION_TIMEOUT: "20s",
      },
      /IDLE_TRANSACTION_TIMEOUT must be shorter than SPIKE_NEXUS_DATABASE_STATEMENT_TIMEOUT/,
    ],
    [
      {
        SPIKE_NEXUS_DATABASE_URL: url,
        SPIKE_NEXUS_POLICY_CHECK_INTERVAL: "0s",
      },
      /SPIKE_NEXUS_POLICY_CHECK_INTERVAL must be a positive duration/,
    ],
    [
      {
        SPIKE_NEXUS_DATABASE_URL: url,
        SPIKE_NEXUS_WRITE_FENCE_PRUNE_INTERVAL: "soon",
      },
      /SPIKE_NEXUS_WRITE_FENCE_PRUNE_INTERVAL/,
    ],
    [
      { SPIKE_NEXUS_DATABASE_URL: `${url}&connect_timeout=x` },
      /connect_timeout=x/,
    ],
  ];
  for (const [vars, pattern] of cases) {
    await withEnv({ ...BASE, ...vars }, () => {
      assert.throws(
        () => readNexusConfig(),
        (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
        JSON.stringify(vars),
      );
    });
  }
});

Deno.test("nexus refuses to start on an invalid database setting, exit 2", async () => {
  const home = await Deno.makeTempDir();
  try {
    const env = {
      ...Object.fromEntries(
        Object.entries(BASE).filter(([, v]) => v !== undefined),
      ) as Record<string, string>,
      HOME: home,
      SPIKE_SVID_DIR: `${home}/svid`,
      SPIKE_NEXUS_TLS_PORT: "127.0.0.1:0",
      SPIKE_NEXUS_DATABASE_URL: "postgres://spike@db/spike?sslmode=allow",
    };
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...permissionFlags("nexus", { ...env, PWD: home }),
        MAIN,
        "nexus",
      ],
      env: { ...runtimeEnv(), ...env },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 2);
    assert.match(
      new TextDecoder().decode(out.stderr),
      /SPIKE_NEXUS_DATABASE_URL has sslmode=allow/,
    );
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
