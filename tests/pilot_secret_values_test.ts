// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Issue 10, item 7: secret values that never appear on the command line.
// Unit tests of the value forms, then a real pilot against a real nexus:
// the value of `password=-` is nowhere in /proc/<pid>/cmdline while pilot
// runs, where `password=<value>` is, for every local user to read.
import assert from "node:assert/strict";
import { CliError } from "../modes/pilot/cli_error.ts";
import { checkSecretKey, parseKeyValuePairs } from "../modes/pilot/secret.ts";
import {
  readPutValues,
  type ValueInput,
} from "../modes/pilot/secret_values.ts";
import { Cluster, runtimeEnv } from "../scripts/cluster.ts";
import { permissionFlags } from "../scripts/permission_flags.ts";
import { waitFor } from "./reliability_support.ts";

const RULES = { parsePairs: parseKeyValuePairs, checkKey: checkSecretKey };
const encoder = new TextEncoder();

function fakeInput(
  stdin: string | Uint8Array,
  files: Record<string, string | Uint8Array> = {},
): ValueInput & { reads: string[] } {
  const bytes = (v: string | Uint8Array) =>
    typeof v === "string" ? encoder.encode(v) : v.slice();
  const reads: string[] = [];
  return {
    reads,
    value: (key) => {
      reads.push(`value:${key}`);
      return Promise.resolve(bytes(stdin));
    },
    stdin: () => {
      reads.push("stdin");
      return Promise.resolve(bytes(stdin));
    },
    file: (path) => {
      reads.push(`file:${path}`);
      const content = files[path];
      return content === undefined
        ? Promise.reject(new CliError(`Input file "${path}" does not exist`, 2))
        : Promise.resolve(bytes(content));
    },
  };
}

async function usage(promise: Promise<unknown>, pattern: RegExp) {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof CliError, String(e));
    assert.equal(e.exitCode, 2);
    assert.match(e.message, pattern);
    assert.doesNotMatch(e.message, /hunter2/);
    return true;
  });
}

Deno.test("key=- takes stdin and key=@file the file, byte for byte", async () => {
  const input = fakeInput("hunter2\n", { "tls.crt": "-----BEGIN\nX\n" });
  const values = await readPutValues(
    ["user=app", "password=-", "cert=@tls.crt"],
    RULES,
    input,
  );
  assert.deepEqual(values, {
    user: "app",
    password: "hunter2\n",
    cert: "-----BEGIN\nX\n",
  });
  assert.deepEqual(input.reads, ["value:password", "file:tls.crt"]);
});

Deno.test("a lone - or @file gives every value as one JSON object", async () => {
  const json = '{"username": "app", "password": "hunter2"}';
  assert.deepEqual(await readPutValues(["-"], RULES, fakeInput(json)), {
    username: "app",
    password: "hunter2",
  });
  assert.deepEqual(
    await readPutValues(["@v.json"], RULES, fakeInput("", { "v.json": json })),
    { username: "app", password: "hunter2" },
  );
});

Deno.test("bad value input is a usage error that never repeats a value", async () => {
  const cases: [string[], ValueInput, RegExp][] = [
    [["a=-", "b=-"], fakeInput("x"), /Only one value can come from stdin/],
    [["-", "a=b"], fakeInput("{}"), /A lone "-" .* cannot be combined/],
    [["a=@"], fakeInput(""), /names no file after "@"/],
    [["a=@none"], fakeInput(""), /Input file "none" does not exist/],
    [
      ["a=@bin"],
      fakeInput("", { bin: new Uint8Array([0xff, 0xfe, 0x00]) }),
      /File "bin" \(the value of "a"\) is not UTF-8 text/,
    ],
    [["-"], fakeInput('{"p": "hunter2", "p": "x"}'), /not valid JSON/],
    [["-"], fakeInput('{"p": 1}'), /the value of "p" must be a string/],
    [["-"], fakeInput('["hunter2"]'), /must hold one JSON object/],
    [["-"], fakeInput("{}"), /needs at least one key/],
    [["-"], fakeInput('{"a=b": "hunter2"}'), /Invalid key "a=b"/],
    [["-"], fakeInput("hunter2"), /The JSON on stdin is not valid JSON/],
  ];
  for (const [pairs, input, pattern] of cases) {
    await usage(readPutValues(pairs, RULES, input), pattern);
  }
});

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Starts `spike pilot …` with stdin held open, as an attacker would see it. */
function startPilot(
  cluster: Cluster,
  args: string[],
  extraEnv: Record<string, string> = {},
) {
  const env = { ...cluster.pilotEnv("superuser"), ...extraEnv };
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...permissionFlags("pilot", { ...env, PWD: cluster.dir }, args),
      MAIN,
      "pilot",
      ...args,
    ],
    env: { ...runtimeEnv(), ...env },
    clearEnv: true,
    cwd: cluster.dir,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** What every local user can read of a process's command line. */
async function cmdline(pid: number): Promise<string> {
  const out = await new Deno.Command("cat", {
    args: [`/proc/${pid}/cmdline`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).replaceAll("\0", " ");
}

Deno.test("secret values given by stdin or file never reach the process list", async (t) => {
  const cluster = await Cluster.create({ backend: "memory" });
  const get = async (path: string) => {
    const res = await cluster.call(
      "superuser",
      "/v1/store/secrets?action=get",
      { path },
    );
    assert.equal(res.status, 200);
    return res.body?.data;
  };
  try {
    await cluster.startNexus();
    await cluster.waitUnlocked();

    await t.step("an argument value is in /proc/<pid>/cmdline", async () => {
      // A nexus that accepts and never answers keeps pilot running.
      using silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const child = startPilot(cluster, [
        "secret",
        "put",
        "apps/old",
        "password=hunter2-argument",
      ], {
        SPIKE_NEXUS_API_URL: `https://127.0.0.1:${silent.addr.port}`,
      });
      await waitFor(
        "pilot to start",
        async () => (await cmdline(child.pid)).includes(" pilot "),
      );
      assert.match(await cmdline(child.pid), /password=hunter2-argument/);
      child.kill("SIGKILL");
      await child.stdin.close();
      await child.output();
    });

    await t.step("password=- keeps the value out of it", async () => {
      const child = startPilot(cluster, [
        "secret",
        "put",
        "apps/db",
        "username=app",
        "password=-",
      ]);
      // Pilot waits for stdin: look at its command line meanwhile.
      await waitFor(
        "pilot to start",
        async () => (await cmdline(child.pid)).includes("password=-"),
      );
      assert.doesNotMatch(await cmdline(child.pid), /hunter2/);
      const writer = child.stdin.getWriter();
      await writer.write(encoder.encode("hunter2-stdin"));
      await writer.close();
      const out = await child.output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.deepEqual(await get("apps/db"), {
        username: "app",
        password: "hunter2-stdin",
      });
    });

    await t.step("key=@file stores the file's exact bytes", async () => {
      const pem =
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
      await Deno.writeTextFile(`${cluster.dir}/tls.crt`, pem);
      await Deno.writeTextFile(`${cluster.dir}/token`, "no-newline");
      const res = await cluster.pilot("superuser", [
        "secret",
        "put",
        "apps/tls",
        "cert=@tls.crt",
        "token=@token",
      ]);
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual(await get("apps/tls"), {
        cert: pem,
        token: "no-newline",
      });
    });

    await t.step("- reads every value as JSON from stdin", async () => {
      const res = await cluster.pilot(
        "superuser",
        ["secret", "put", "apps/json", "-"],
        { stdin: '{"user": "app", "password": "p\\nq"}' },
      );
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual(await get("apps/json"), {
        user: "app",
        password: "p\nq",
      });
    });

    await t.step(
      "a missing or unreadable file is one sentence, exit 2",
      async () => {
        const res = await cluster.pilot("superuser", [
          "secret",
          "put",
          "apps/none",
          "cert=@missing.crt",
        ]);
        assert.equal(res.code, 2);
        assert.equal(
          res.stderr,
          'Input file "missing.crt" does not exist\n',
        );
      },
    );
  } finally {
    await cluster.close();
  }
});
