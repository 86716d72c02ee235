// Copyright 2026 the SPIKE for Deno authors. MIT license.
// "An invalid environment value stops the start with a sentence naming the
// variable": the values read lazily (trust roots, log level, SVID source)
// and the durations zero would break are checked at start, in every mode.
import assert from "node:assert/strict";
import { ConfigError } from "../lib/config/env.ts";
import { checkSharedConfig } from "../lib/config/shared.ts";
import { checkLogLevel, createLogger, setDefaultLogLevel } from "../lib/log.ts";
import {
  EndpointAddressError,
  parseEndpointAddress,
} from "../lib/spiffe/endpoint_address.ts";
import { checkTrustRootConfig } from "../lib/spiffe/roles.ts";
import { parseFederatedBundles } from "../lib/spiffe/bundle_config.ts";
import {
  openWorkloadApiSource,
  WorkloadApiError,
} from "../lib/spiffe/workload_api.ts";
import { AuditLog } from "../modes/nexus/audit.ts";
import { readNexusConfig } from "../modes/nexus/config.ts";
import { resolveDataDir } from "../modes/nexus/store/data_dir.ts";
import { createDevCa, issueSvidDir } from "../scripts/dev_ca.ts";
import { type Mode, permissionFlags } from "../scripts/permission_flags.ts";
import { withEnv } from "./env_support.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const DENO_DIR = Deno.env.get("DENO_DIR") ??
  `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;

function configError(pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => e instanceof ConfigError && pattern.test(e.message);
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a mode as a process with its scoped permissions and `env` only. */
async function spike(
  mode: Mode,
  env: Record<string, string>,
  args: string[] = [],
): Promise<Run> {
  const home = await Deno.makeTempDir();
  try {
    const full = {
      HOME: home,
      SPIKE_SVID_DIR: `${home}/no-svid`,
      SPIKE_NEXUS_BACKEND_STORE: "memory",
      SPIKE_NEXUS_TLS_PORT: "127.0.0.1:0",
      SPIKE_KEEPER_TLS_PORT: "127.0.0.1:0",
      SPIKE_NEXUS_API_URL: "https://127.0.0.1:9",
      ...env,
    };
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...permissionFlags(mode, { ...full, PWD: home }, args),
        MAIN,
        mode,
        ...args,
      ],
      env: { ...full, DENO_DIR },
      clearEnv: true,
      cwd: home,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/** Asserts a stopped start: the code, and one sentence on stderr. */
function assertStopped(run: Run, code: number, pattern: RegExp): void {
  assert.equal(run.code, code, run.stderr);
  assert.equal(run.stdout, "");
  const lines = run.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0]!, pattern);
}

const PILOT_LIST = ["secret", "list"];

// 1. Trust roots

Deno.test("checkTrustRootConfig names an invalid trust root variable", async () => {
  await withEnv({ SPIKE_TRUST_ROOT_PILOT: "Bad_Domain!" }, () => {
    assert.throws(
      checkTrustRootConfig,
      configError(/^SPIKE_TRUST_ROOT_PILOT holds an invalid trust domain/),
    );
  });
  await withEnv({ SPIKE_TRUST_ROOT_LITE_WORKLOAD: " , " }, () => {
    assert.throws(
      checkTrustRootConfig,
      configError(/^SPIKE_TRUST_ROOT_LITE_WORKLOAD holds no trust domain/),
    );
  });
  await withEnv({ SPIKE_TRUST_ROOT_PILOT: "spike.ist,example.org" }, () => {
    checkTrustRootConfig();
  });
});

Deno.test("checkTrustRootConfig checks SPIKE_TRUST_ROOT even when every role has its own", async () => {
  await withEnv({
    SPIKE_TRUST_ROOT: "Bad!",
    SPIKE_TRUST_ROOT_NEXUS: "spike.ist",
    SPIKE_TRUST_ROOT_KEEPER: "spike.ist",
    SPIKE_TRUST_ROOT_PILOT: "spike.ist",
    SPIKE_TRUST_ROOT_BOOTSTRAP: "spike.ist",
    SPIKE_TRUST_ROOT_LITE_WORKLOAD: "spike.ist",
  }, () => {
    assert.throws(checkTrustRootConfig, configError(/^SPIKE_TRUST_ROOT /));
  });
});

Deno.test("nexus with an invalid SPIKE_TRUST_ROOT_PILOT stops with exit 2 before listening", async () => {
  const run = await spike("nexus", { SPIKE_TRUST_ROOT_PILOT: "Bad_Domain!" });
  assertStopped(run, 2, /^SPIKE_TRUST_ROOT_PILOT .*"Bad_Domain!"/);
});

Deno.test("keeper with an invalid SPIKE_TRUST_ROOT_NEXUS stops with exit 2", async () => {
  const run = await spike("keeper", { SPIKE_TRUST_ROOT_NEXUS: "Bad!" });
  assertStopped(run, 2, /^SPIKE_TRUST_ROOT_NEXUS .*"Bad!"/);
});

Deno.test("pilot with an invalid SPIKE_TRUST_ROOT_NEXUS stops with exit 2, not as unreachable", async () => {
  const run = await spike("pilot", { SPIKE_TRUST_ROOT_NEXUS: "Bad!" }, [
    ...PILOT_LIST,
  ]);
  assertStopped(run, 2, /^SPIKE_TRUST_ROOT_NEXUS .*"Bad!"/);
});

// 2. Durations

Deno.test("nexus refuses zero and overflowing durations, naming the variable", async () => {
  for (
    const name of [
      "SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL",
      "SPIKE_NEXUS_KEEPER_TIMEOUT",
      "SPIKE_NEXUS_RECOVERY_MAX_INTERVAL",
      "SPIKE_NEXUS_RESTORE_TIMEOUT",
      "SPIKE_HTTP_SERVER_REFUSAL_LOG_INTERVAL",
    ]
  ) {
    for (const [value, why] of [["0s", "positive"], ["0", "positive"]]) {
      await withEnv(
        { SPIKE_NEXUS_BACKEND_STORE: "memory", [name]: value },
        () => {
          assert.throws(
            readNexusConfig,
            configError(new RegExp(`^${name} must be a ${why} duration`)),
            `${name}=${value}`,
          );
        },
      );
    }
    // Beyond a 32-bit timer the delay would fire at once.
    await withEnv(
      { SPIKE_NEXUS_BACKEND_STORE: "memory", [name]: "1000h" },
      () => {
        assert.throws(
          readNexusConfig,
          configError(new RegExp(`^${name} must be at most 596h`)),
        );
      },
    );
  }
  await withEnv({
    SPIKE_NEXUS_BACKEND_STORE: "memory",
    SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL: "30s",
    SPIKE_NEXUS_RESTORE_TIMEOUT: "596h",
  }, () => {
    const config = readNexusConfig();
    assert.equal(config.keeperUpdateIntervalMs, 30_000);
    assert.equal(config.restoreTimeoutMs, 596 * 3_600_000);
  });
});

Deno.test("nexus with SPIKE_NEXUS_KEEPER_TIMEOUT=0s stops with exit 2", async () => {
  const run = await spike("nexus", { SPIKE_NEXUS_KEEPER_TIMEOUT: "0s" });
  assertStopped(run, 2, /^SPIKE_NEXUS_KEEPER_TIMEOUT must be a positive/);
});

Deno.test("keeper with SPIKE_SPIFFE_SOURCE_TIMEOUT=0 stops with exit 2", async () => {
  const run = await spike("keeper", { SPIKE_SPIFFE_SOURCE_TIMEOUT: "0" });
  assertStopped(run, 2, /^SPIKE_SPIFFE_SOURCE_TIMEOUT must be a positive/);
});

Deno.test("pilot with SPIKE_HTTP_CLIENT_TIMEOUT=0s stops with exit 2", async () => {
  const run = await spike("pilot", { SPIKE_HTTP_CLIENT_TIMEOUT: "0s" }, [
    ...PILOT_LIST,
  ]);
  assertStopped(run, 2, /^SPIKE_HTTP_CLIENT_TIMEOUT must be a positive/);
});

// 3. Log level

Deno.test("checkLogLevel refuses an unknown level and names the allowed ones", async () => {
  await withEnv({ SPIKE_SYSTEM_LOG_LEVEL: "verbose" }, () => {
    assert.throws(
      checkLogLevel,
      configError(
        /^SPIKE_SYSTEM_LOG_LEVEL must be one of DEBUG, INFO, WARN, ERROR, got "verbose"$/,
      ),
    );
    // A logger made anyway falls back instead of throwing on every line.
    createLogger("test").debug("Not written");
  });
  for (const level of ["debug", "Info", "WARN", "error", undefined]) {
    await withEnv({ SPIKE_SYSTEM_LOG_LEVEL: level }, checkLogLevel);
  }
});

for (const mode of ["nexus", "keeper", "pilot"] as const) {
  Deno.test(`${mode} with SPIKE_SYSTEM_LOG_LEVEL=verbose stops with exit 2`, async () => {
    const run = await spike(
      mode,
      { SPIKE_SYSTEM_LOG_LEVEL: "verbose" },
      mode === "pilot" ? [...PILOT_LIST] : [],
    );
    assertStopped(
      run,
      2,
      /^SPIKE_SYSTEM_LOG_LEVEL must be one of DEBUG, INFO, WARN, ERROR/,
    );
  });
}

// 4. Pilot's quiet default

Deno.test("setDefaultLogLevel applies to loggers made before it, unless the variable is set", async () => {
  const lines: string[] = [];
  const original = Deno.stderr.writeSync;
  Deno.stderr.writeSync = (bytes: Uint8Array) => {
    lines.push(new TextDecoder().decode(bytes));
    return bytes.byteLength;
  };
  try {
    const log = createLogger("test");
    await withEnv({ SPIKE_SYSTEM_LOG_LEVEL: undefined }, () => {
      setDefaultLogLevel("ERROR");
      log.warn("Hidden");
      log.error("Shown");
    });
    await withEnv({ SPIKE_SYSTEM_LOG_LEVEL: "WARN" }, () => {
      log.warn("Shown too");
    });
  } finally {
    setDefaultLogLevel("WARN");
    Deno.stderr.writeSync = original;
  }
  assert.deepEqual(
    lines.map((l) => JSON.parse(l).msg),
    ["Shown", "Shown too"],
  );
});

/**
 * A socket that hangs up on every connection, as an agent that is not
 * ready does: a client gets UNAVAILABLE and retries until its timeout.
 */
function hangUpSocket(path: string): Deno.Listener {
  const listener = Deno.listen({ transport: "unix", path });
  (async () => {
    for await (const conn of listener) conn.close();
  })().catch(() => {});
  return listener;
}

Deno.test("pilot on an unreachable Workload API socket prints one short sentence", async () => {
  // A folder of its own: the machine's /tmp is shared with other runs.
  const dir = await Deno.makeTempDir({ prefix: "spike-sock-" });
  const socket = `${dir}/agent.sock`;
  const env = {
    SPIKE_SVID_DIR: "",
    SPIFFE_ENDPOINT_SOCKET: `unix://${socket}`,
    SPIKE_SPIFFE_SOURCE_TIMEOUT: "1500ms",
  };
  // No such socket: pilot says so at once.
  assertStopped(
    await spike("pilot", env, [...PILOT_LIST]),
    1,
    new RegExp(
      `^Cannot get this workload's SVID: the Workload API socket ${socket} does not exist \\(SPIFFE_ENDPOINT_SOCKET=unix://${socket}\\): start the SPIRE agent`,
    ),
  );
  // A socket that hangs up: pilot waits out the timeout and names the last
  // error only.
  const listener = hangUpSocket(socket);
  try {
    const quiet = await spike("pilot", env, [...PILOT_LIST]);
    assertStopped(
      quiet,
      1,
      /^Cannot get this workload's SVID: .* \(last error: UNAVAILABLE: [^\n]+\)$/,
    );
    // An explicit level is honoured: the retries show.
    const loud = await spike(
      "pilot",
      { ...env, SPIKE_SYSTEM_LOG_LEVEL: "WARN" },
      [...PILOT_LIST],
    );
    assert.equal(loud.code, 1);
    assert.match(loud.stderr, /"level":"WARN".*"Workload API stream ended/);
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the Workload API timeout message keeps only the cause of a failed connection", async () => {
  const socket = `/tmp/spike-absent-${crypto.randomUUID()}.sock`;
  let error: unknown;
  await withEnv({ SPIKE_SYSTEM_LOG_LEVEL: "ERROR" }, async () => {
    error = await openWorkloadApiSource({
      endpoint: `unix://${socket}`,
      timeoutMs: 300,
      backoffBaseMs: 50,
      backoffMaxMs: 50,
    }).then(() => assert.fail("opened"), (e: unknown) => e);
  });
  assert.ok(error instanceof WorkloadApiError);
  assert.match(
    error.message,
    new RegExp(`\\(last error: UNAVAILABLE: connect ENOENT ${socket}\\)$`),
  );
});

// 5. Data directory under HOME

Deno.test("a data dir below HOME is allowed even when HOME is /root", {
  ignore: (() => {
    try {
      return !Deno.statSync("/root").isDirectory;
    } catch {
      return true;
    }
  })(),
}, () => {
  const envOf = (vars: Record<string, string>) => (name: string) => vars[name];
  // The default resolves there, so the same path given explicitly passes.
  assert.equal(
    resolveDataDir(envOf({ HOME: "/root" })),
    "/root/.spike/data",
  );
  assert.equal(
    resolveDataDir(
      envOf({ HOME: "/root", SPIKE_NEXUS_DATA_DIR: "/root/spike-data" }),
    ),
    "/root/spike-data",
  );
  for (
    const [home, dir] of [
      ["/root", "/root"],
      ["/root", "/etc/spike"],
      ["/root", "/root/../etc/spike"],
      ["/", "/etc/spike"],
      ["/home/alice", "/root/spike-data"],
    ]
  ) {
    assert.throws(
      () => resolveDataDir(envOf({ HOME: home!, SPIKE_NEXUS_DATA_DIR: dir! })),
      configError(/system directories/),
      `HOME=${home} SPIKE_NEXUS_DATA_DIR=${dir}`,
    );
  }
});

// 6. Audit log

Deno.test("an audit log in a missing folder is refused naming SPIKE_NEXUS_AUDIT_LOG", async () => {
  await assert.rejects(
    AuditLog.open("/nonexistent-spike/audit.log"),
    configError(
      /^SPIKE_NEXUS_AUDIT_LOG \/nonexistent-spike\/audit\.log cannot be opened: its folder does not exist$/,
    ),
  );
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      AuditLog.open(dir),
      configError(
        /^SPIKE_NEXUS_AUDIT_LOG .* cannot be opened: it is a folder$/,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("nexus with an audit log in a missing folder stops with one sentence", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ca = await createDevCa("spike.ist");
    await issueSvidDir(ca, "spiffe://spike.ist/spike/nexus", `${dir}/nexus`);
    const run = await spike("nexus", {
      SPIKE_SVID_DIR: `${dir}/nexus`,
      SPIKE_NEXUS_AUDIT_LOG: "/nonexistent-spike/audit.log",
    });
    assert.equal(run.code, 2);
    assertStopped(
      run,
      run.code,
      /^SPIKE_NEXUS_AUDIT_LOG \/nonexistent-spike\/audit\.log cannot be opened/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// 7. Workload API endpoint

Deno.test("a bare socket path in SPIFFE_ENDPOINT_SOCKET is refused naming the variable", async () => {
  assert.throws(
    () => parseEndpointAddress("/tmp/x.sock", "SPIFFE_ENDPOINT_SOCKET"),
    (e: unknown) =>
      e instanceof EndpointAddressError &&
      e.message ===
        'SPIFFE_ENDPOINT_SOCKET "/tmp/x.sock" is invalid: workload endpoint socket URI must have a "tcp" or "unix" scheme: write unix:///tmp/x.sock',
  );
  await withEnv({
    SPIKE_SVID_DIR: undefined,
    SPIFFE_ENDPOINT_SOCKET: "/tmp/x.sock",
  }, async () => {
    assert.throws(checkSharedConfig, configError(/^SPIFFE_ENDPOINT_SOCKET /));
    await assert.rejects(
      openWorkloadApiSource(),
      (e: unknown) =>
        e instanceof EndpointAddressError &&
        e.message.startsWith('SPIFFE_ENDPOINT_SOCKET "/tmp/x.sock" is invalid'),
    );
  });
  // An SVID directory wins, so the socket variable is not read.
  await withEnv({
    SPIKE_SVID_DIR: "/tmp/svid",
    SPIFFE_ENDPOINT_SOCKET: "/tmp/x.sock",
  }, checkSharedConfig);
});

Deno.test("keeper with a bare-path SPIFFE_ENDPOINT_SOCKET stops with exit 2 naming it", async () => {
  const run = await spike("keeper", {
    SPIKE_SVID_DIR: "",
    SPIFFE_ENDPOINT_SOCKET: "/tmp/x.sock",
  });
  assertStopped(run, 2, /^SPIFFE_ENDPOINT_SOCKET "\/tmp\/x\.sock" is invalid/);
});

// 6. Federated bundles of SVID files

Deno.test("SPIKE_FEDERATED_BUNDLES syntax errors name the variable and the entry", () => {
  const cases: [string, RegExp][] = [
    [
      "partner.example",
      /entry "partner\.example" is not <trust domain>=<PEM file>/,
    ],
    ["=/x.pem", /entry "=\/x\.pem" is not/],
    ["partner.example=", /entry "partner\.example=" is not/],
    ["a.org=/a.pem,,b.org=/b.pem", /has an empty entry/],
    ["Bad_TD!=/a.pem", /invalid trust domain "Bad_TD!"/],
    ["a.org=/a.pem,a.org=/b.pem", /names trust domain "a\.org" twice/],
  ];
  for (const [value, pattern] of cases) {
    assert.throws(
      () => parseFederatedBundles(value),
      configError(new RegExp(`^SPIKE_FEDERATED_BUNDLES .*${pattern.source}`)),
      value,
    );
  }
  assert.deepEqual(
    [...parseFederatedBundles(" a.org = /a.pem , b.org=rel/b=c.pem ")],
    [["a.org", "/a.pem"], ["b.org", "rel/b=c.pem"]],
  );
});

Deno.test("bundle settings for SVID files are refused with the Workload API", async () => {
  for (
    const name of [
      "SPIKE_FEDERATED_BUNDLES",
      "SPIKE_SVID_BUNDLE_TRUST_CAS_WITHOUT_ID",
    ]
  ) {
    await withEnv({
      SPIKE_SVID_DIR: undefined,
      SPIFFE_ENDPOINT_SOCKET: "unix:///tmp/agent.sock",
      SPIKE_FEDERATED_BUNDLES: name === "SPIKE_FEDERATED_BUNDLES"
        ? "a.org=/a.pem"
        : undefined,
      SPIKE_SVID_BUNDLE_TRUST_CAS_WITHOUT_ID: name === "SPIKE_FEDERATED_BUNDLES"
        ? undefined
        : "true",
    }, () => {
      assert.throws(
        checkSharedConfig,
        configError(new RegExp(`^${name} applies to SVID files`)),
      );
    });
  }
  await withEnv({
    SPIKE_SVID_DIR: "/svid",
    SPIKE_SVID_BUNDLE_TRUST_CAS_WITHOUT_ID: "maybe",
  }, () => {
    assert.throws(
      checkSharedConfig,
      configError(
        /^SPIKE_SVID_BUNDLE_TRUST_CAS_WITHOUT_ID must be true or false/,
      ),
    );
  });
});

Deno.test("every mode stops with exit 2 on a federated bundle file it cannot use", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const local = await createDevCa("spike.ist");
    const partner = await createDevCa("partner.example");
    const ids = {
      nexus: "spiffe://spike.ist/spike/nexus",
      keeper: "spiffe://spike.ist/spike/keeper/1",
      pilot: "spiffe://spike.ist/spike/pilot/role/superuser",
    } as const;
    await Deno.writeTextFile(`${dir}/wrong.pem`, local.cert.toString("pem"));
    await Deno.writeTextFile(`${dir}/ok.pem`, partner.cert.toString("pem"));
    for (const mode of ["nexus", "keeper", "pilot"] as const) {
      const svid = `${dir}/${mode}`;
      await issueSvidDir(local, ids[mode], svid);
      const args = mode === "pilot" ? PILOT_LIST : [];
      const missing = await spike(mode, {
        SPIKE_SVID_DIR: svid,
        SPIKE_FEDERATED_BUNDLES: `partner.example=${dir}/none.pem`,
      }, args);
      assertStopped(
        missing,
        2,
        /^SPIKE_FEDERATED_BUNDLES: the bundle file of "partner\.example", .*none\.pem, is missing/,
      );
      const wrong = await spike(mode, {
        SPIKE_SVID_DIR: svid,
        SPIKE_FEDERATED_BUNDLES: `partner.example=${dir}/wrong.pem`,
      }, args);
      assertStopped(
        wrong,
        2,
        /^SPIKE_FEDERATED_BUNDLES: certificate 1 of .*wrong\.pem .*names trust domain "spike\.ist", not "partner\.example"/,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
