// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { formatTime, render } from "../modes/pilot/output.ts";
import {
  formatMetadataHuman,
  formatSecretHuman,
} from "../modes/pilot/secret.ts";
import { formatPolicyHuman, policyView } from "../modes/pilot/policy.ts";
import { formatStatusHuman } from "../modes/pilot/status.ts";
import {
  formatDrillHuman,
  formatRestoreStatus,
  recoverInstructions,
} from "../modes/pilot/operator.ts";
import {
  errorForStatus,
  LOCKED_MESSAGE,
  nexusBaseUrl,
} from "../modes/pilot/nexus.ts";
import { describeError, main, PILOT_HELP } from "../modes/pilot/main.ts";
import { CliError } from "../modes/pilot/cli_error.ts";
import { EXIT_CODE_TABLE, ExitCode } from "../modes/pilot/exit_codes.ts";
import { ValidationError } from "../lib/wire/validate.ts";
import { ConfigError } from "../lib/config/env.ts";

Deno.test("render writes JSON with 2-space indentation and a newline", () => {
  assert.equal(
    render({ a: [1] }, "json", () => "x"),
    '{\n  "a": [\n    1\n  ]\n}\n',
  );
  assert.equal(render("v", "json", () => "x"), '"v"\n');
});

Deno.test("render builds the human layout only when asked", () => {
  let built = 0;
  const human = () => {
    built++;
    return "text";
  };
  assert.equal(render({ a: 1 }, "yaml", human), "a: 1\n");
  assert.equal(built, 0);
  assert.equal(render({ a: 1 }, "human", human), "text\n");
  assert.equal(built, 1);
});

Deno.test("formatTime shortens RFC 3339 and shows Go's zero time as '-'", () => {
  assert.equal(
    formatTime("2026-03-04T05:06:07.123456789Z"),
    "2026-03-04 05:06:07 UTC",
  );
  assert.equal(formatTime(null), "-");
  assert.equal(formatTime("0001-01-01T00:00:00Z"), "-");
  assert.equal(formatTime("someday"), "someday");
});

Deno.test("a secret prints as key: value lines", () => {
  assert.equal(
    formatSecretHuman({ user: "admin", pass: "p: w" }),
    "user: admin\npass: p: w\n",
  );
  assert.equal(formatSecretHuman({}), "");
});

Deno.test("metadata prints upstream's layout with versions in numeric order", () => {
  const text = formatMetadataHuman({
    metadata: {
      currentVersion: 10,
      oldestVersion: 2,
      createdTime: "2026-01-01T00:00:00Z",
      updatedTime: "2026-01-02T00:00:00Z",
      maxVersions: 10,
    },
    versions: {
      "10": {
        version: 10,
        createdTime: "2026-01-02T00:00:00Z",
        deletedTime: null,
      },
      "2": {
        version: 2,
        createdTime: "2026-01-01T00:00:00Z",
        deletedTime: "2026-01-01T12:00:00Z",
      },
    },
  });
  const lines = text.split("\n");
  assert.equal(lines[0], "Metadata:");
  assert.ok(lines.includes("Current Version : 10"));
  assert.ok(lines.includes("Created Time    : 2026-01-01 00:00:00 UTC"));
  const v2 = lines.indexOf("Version 2:");
  const v10 = lines.indexOf("Version 10:");
  assert.ok(v2 > 0 && v10 > v2, "numeric order");
  assert.equal(lines[v2 + 2], "  Deleted: 2026-01-01 12:00:00 UTC");
  assert.notEqual(lines[v10 + 2]?.startsWith("  Deleted"), true);
});

Deno.test("a policy prints its fields, reading upstream's spiffiedPattern key", () => {
  const view = policyView({
    id: "",
    name: "web",
    spiffiedPattern: "^spiffe://spike\\.ist/web$",
    pathPattern: "^apps/web/.*$",
    permissions: ["read", "list"],
    createdAt: "2026-01-01T00:00:00Z",
    updatedAt: "0001-01-01T00:00:00Z",
  });
  assert.equal(
    formatPolicyHuman(view),
    [
      "Name:              web",
      "SPIFFE ID Pattern: ^spiffe://spike\\.ist/web$",
      "Path Pattern:      ^apps/web/.*$",
      "Permissions:       read, list",
      "Created At:        2026-01-01 00:00:00 UTC",
      "Updated At:        -",
      "",
    ].join("\n"),
  );
});

Deno.test("status prints state, shards, restore progress and a line per keeper", () => {
  const text = formatStatusHuman({
    state: "locked",
    backend: "sqlite",
    threshold: 2,
    shares: 3,
    restore: { collected: 1, remaining: 1 },
    keepers: [
      {
        index: 1,
        url: "https://k1:8443",
        reachable: true,
        holdsShard: true,
        lastPush: "2026-01-01T00:00:00Z",
        lastError: null,
      },
      {
        index: 2,
        url: "https://k2:8443",
        reachable: false,
        holdsShard: null,
        lastPush: null,
        lastError: "Server unreachable",
      },
      { index: 3, url: "https://k3:8443", reachable: null, holdsShard: false },
    ],
  });
  assert.equal(
    text,
    [
      "State:    locked",
      "Backend:  sqlite",
      "Shards:   2 of 3 restore the root key",
      "Restore:  1 collected, 1 remaining",
      "Keepers:",
      "  1  https://k1:8443  reachable, holds its shard, last push 2026-01-01 00:00:00 UTC",
      "  2  https://k2:8443  unreachable (last error: Server unreachable)",
      "  3  https://k3:8443  not contacted yet, does not hold its shard",
      "",
    ].join("\n"),
  );
  const memory = formatStatusHuman({
    state: "unlocked",
    backend: "memory",
    threshold: null,
    shares: null,
    restore: { collected: 0, remaining: null },
    keepers: [],
  });
  assert.match(memory, /Shards: {3}none \(no keepers\)\nKeepers: {2}none\n$/);
  assert.ok(!memory.includes("Restore:"));
});

Deno.test("restore prints progress or the restored message", () => {
  assert.equal(
    formatRestoreStatus({ collected: 1, remaining: 2, restored: false }),
    "Shards collected: 1\nShards remaining: 2\n" +
      "Please run `spike pilot operator restore` again to provide the remaining shards.\n",
  );
  assert.match(
    formatRestoreStatus({ collected: 2, remaining: 0, restored: true }),
    /^SPIKE is now restored and ready to use\.\n/,
  );
});

Deno.test("drill prints a line per file and the verdict", () => {
  const text = formatDrillHuman({
    files: [
      { file: "a.txt", index: 1, valid: true, reason: null },
      {
        file: "b.txt",
        index: 2,
        valid: false,
        reason: "not a shard of this installation",
      },
      { file: "c.txt", index: null, valid: false, reason: "no such file" },
    ],
    wouldRestore: false,
    threshold: 2,
  });
  assert.equal(
    text,
    [
      "OK         a.txt (shard 1)",
      "NOT VALID  b.txt (shard 2): not a shard of this installation",
      "NOT VALID  c.txt: no such file",
      "These shards would NOT restore SPIKE Nexus (1 valid, threshold 2).",
      "",
    ].join("\n"),
  );
});

Deno.test("recover prints upstream's instructions with the folder", () => {
  const text = recoverInstructions("/r");
  assert.match(
    text,
    /SPIKE Recovery shards saved to the recovery directory:\n {2}\/r\n/,
  );
  assert.match(text, /1\. You encrypt these shards and keep them safe\./);
});

Deno.test("HTTP statuses map to distinct exit codes and one sentence", () => {
  const ctx = { subject: 'Secret "db"' };
  const cases: [number, string | undefined, number, RegExp][] = [
    [
      400,
      "api_bad_request",
      ExitCode.Usage,
      /refused the request as invalid \(HTTP 400, api_bad_request\)/,
    ],
    [
      401,
      "access_unauthorized",
      ExitCode.Unauthorized,
      /refused this identity \(spiffe:\/\/me\/x\)/,
    ],
    [404, "api_not_found", ExitCode.NotFound, /^Secret "db" not found$/],
    [409, "api_conflict", ExitCode.Conflict, /conflicts/],
    [413, undefined, ExitCode.Usage, /larger than SPIKE Nexus accepts/],
    [503, "state_not_ready", ExitCode.NotReady, /^SPIKE Nexus is locked/],
    [
      500,
      "api_internal_error",
      ExitCode.Failure,
      /failed to handle the request \(HTTP 500/,
    ],
    [418, undefined, ExitCode.Failure, /unexpected status \(HTTP 418\)/],
  ];
  for (const [status, code, exit, pattern] of cases) {
    const e = errorForStatus(status, code, ctx, "spiffe://me/x");
    assert.equal(e.exitCode, exit, String(status));
    assert.match(e.message, pattern);
  }
  assert.equal(errorForStatus(503, undefined, {}, "x").message, LOCKED_MESSAGE);
  assert.equal(
    errorForStatus(409, "api_conflict", { conflict: "Already" }, "x").message,
    "Already",
  );
  assert.equal(
    errorForStatus(404, undefined, { notFound: "Gone" }, "x").message,
    "Gone",
  );
});

Deno.test("describeError maps every error kind to a code, never a stack", () => {
  assert.deepEqual(describeError(new CliError("Nope", ExitCode.Conflict)), {
    message: "Nope",
    exitCode: 7,
  });
  assert.equal(describeError(new ValidationError("path", "Bad")).exitCode, 2);
  assert.equal(describeError(new ConfigError("Bad env")).exitCode, 2);
  assert.equal(
    describeError(new Deno.errors.BrokenPipe("x")).message,
    undefined,
  );
  assert.equal(
    describeError(
      new Deno.errors.NotCapable(
        'Requires net access to "10.0.0.1:8553", run again with the --allow-net flag',
      ),
    ).message,
    'Cannot connect to "10.0.0.1:8553": this process was not granted access to it (deno task spike grants each mode only the files, hosts and variables its configuration and arguments name)',
  );
  // Wrapped in another error, as the mTLS client wraps a failed connect.
  const wrapped = new Error("TLS failure", {
    cause: new Deno.errors.NotCapable(
      'Requires net access to "h:1", run again with the --allow-net flag',
    ),
  });
  assert.match(describeError(wrapped).message!, /^Cannot connect to "h:1"/);
  // Quoted inside a sentence.
  assert.equal(
    describeError(
      new CliError(
        'Cannot get this workload\'s SVID: requires read access to "/s", run again with the --allow-read flag',
      ),
    ).message,
    'Cannot get this workload\'s SVID: no read access to "/s" was granted to this process',
  );
  const other = describeError(new RangeError("boom\n    at somewhere"));
  assert.equal(other.message, "Unexpected error: RangeError: boom");
  assert.equal(other.exitCode, 1);
});

Deno.test("the help documents every exit code", () => {
  for (const [code, meaning] of EXIT_CODE_TABLE) {
    assert.ok(PILOT_HELP.includes(`  ${code}  ${meaning}`), meaning);
  }
  assert.deepEqual(
    EXIT_CODE_TABLE.map(([code]) => code),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
});

Deno.test("main answers usage errors with exit code 2 before any call", async () => {
  const error = console.error;
  const errors: unknown[] = [];
  console.error = (...args: unknown[]) => errors.push(args.join(" "));
  try {
    assert.equal(await main([]), 2);
    assert.equal(await main(["nope"]), 2);
    assert.equal(await main(["secret", "frobnicate"]), 2);
    assert.equal(await main(["secret", "get"]), 2);
    assert.equal(await main(["policy", "get"]), 2);
    assert.equal(await main(["operator"]), 2);
    assert.equal(await main(["cipher", "encrypt", "--nope"]), 2);
    assert.equal(await main(["status", "-f", "toml"]), 2);
    assert.equal(
      await main(["policy", "create", "--name", "d1", "--name", "d2"]),
      2,
    );
  } finally {
    console.error = error;
  }
  assert.equal(errors.length, 9);
  assert.match(String(errors[8]), /--name is given more than once/);
  for (const line of errors) assert.ok(!String(line).includes("\n"));
});

Deno.test("SPIKE_NEXUS_API_URL must be an https URL", () => {
  const saved = Deno.env.get("SPIKE_NEXUS_API_URL");
  try {
    Deno.env.delete("SPIKE_NEXUS_API_URL");
    assert.equal(nexusBaseUrl(), "https://localhost:8553");
    Deno.env.set("SPIKE_NEXUS_API_URL", "https://nexus.example:9/");
    assert.equal(nexusBaseUrl(), "https://nexus.example:9");
    Deno.env.set("SPIKE_NEXUS_API_URL", "http://nexus:1");
    assert.throws(
      () => nexusBaseUrl(),
      (e: unknown) => e instanceof CliError && e.exitCode === 2,
    );
    Deno.env.set("SPIKE_NEXUS_API_URL", "not a url");
    assert.throws(() => nexusBaseUrl(), /not a URL/);
  } finally {
    if (saved === undefined) Deno.env.delete("SPIKE_NEXUS_API_URL");
    else Deno.env.set("SPIKE_NEXUS_API_URL", saved);
  }
});

Deno.test("status lists the replicas of a shared store and marks the push leader", () => {
  const base = {
    state: "unlocked",
    backend: "postgres",
    threshold: 2,
    shares: 3,
    restore: { collected: 0, remaining: 2 },
    keepers: [],
  };
  const text = formatStatusHuman({
    ...base,
    replicas: [
      {
        id: "a1",
        name: "replica-1",
        address: "10.0.0.1:8553",
        state: "unlocked",
        pushLeader: true,
        self: false,
        pid: 41,
        secondsSinceSeen: 0.4,
      },
      {
        id: "b2",
        name: "",
        address: "10.0.0.2:8553",
        state: "locked",
        pushLeader: false,
        self: true,
        pid: 42,
        secondsSinceSeen: 0,
      },
    ],
    pushLeader: "a1",
  });
  assert.match(text, /Replicas: \(\* leads the keeper push loop\)/);
  assert.ok(
    text.includes(
      "\n  * replica-1  10.0.0.1:8553  pid 41  unlocked  seen 0.4 s ago\n",
    ),
    text,
  );
  assert.ok(
    text.includes(
      "\n    replica b2  10.0.0.2:8553  pid 42  locked  seen 0 s ago  (answered this call)\n",
    ),
    text,
  );
  assert.match(
    formatStatusHuman({ ...base, replicas: null, database: "unreachable" }),
    /Replicas: unknown \(this replica cannot reach the database\)/,
  );
});
