// Copyright 2026 the SPIKE for Deno authors. MIT license.
// `deno task spike <mode>`: the launcher runs the mode in the operator's
// folder with flags that let it read what it is told to, and leaves bad
// configuration to the mode, which explains it in one sentence.
import assert from "node:assert/strict";
import { createDevCa, issueSvidDir } from "../scripts/dev_ca.ts";
import { ExitCode } from "../modes/pilot/exit_codes.ts";
import { taskArgs } from "./task_support.ts";

const ROOT = new URL("..", import.meta.url).pathname;

interface Run {
  code: number;
  stderr: string;
}

/** The environment every run starts from: nothing of this process's own. */
function baseEnv(home: string): Record<string, string> {
  const env: Record<string, string> = { HOME: home };
  const cache = Deno.env.get("XDG_CACHE_HOME") ??
    `${Deno.env.get("HOME")}/.cache`;
  env.DENO_DIR = Deno.env.get("DENO_DIR") ?? `${cache}/deno`;
  const path = Deno.env.get("PATH");
  if (path !== undefined) env.PATH = path;
  return env;
}

/** Runs `deno task spike …` from `cwd`, as an operator would. */
async function task(
  cwd: string,
  env: Record<string, string>,
  args: string[],
): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", `--config=${ROOT}deno.json`, "spike", ...args],
    cwd,
    env: { ...baseEnv(cwd), ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** Runs the launcher with the task's flags, started in the repository. */
async function launch(
  env: Record<string, string>,
  args: string[],
): Promise<Run> {
  const home = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [...await taskArgs("spike"), ...args],
      cwd: ROOT,
      env: { ...baseEnv(home), ...env },
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

const POLICY = `name: web-read
spiffeidPattern: ^spiffe://spike\\.ist/web/.*$
pathPattern: ^apps/web/.*$
permissions:
  - read
`;

Deno.test("deno task spike reads the operator's relative files in the folder it was called from", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ca = await createDevCa();
    await issueSvidDir(
      ca,
      "spiffe://spike.ist/spike/pilot/role/superuser",
      `${dir}/svid`,
    );
    await Deno.writeTextFile(`${dir}/in.txt`, "hello");
    await Deno.writeTextFile(`${dir}/policy.yaml`, POLICY);
    const nexus = `https://127.0.0.1:${freePort()}`;
    const env = { SPIKE_SVID_DIR: "svid", SPIKE_NEXUS_API_URL: nexus };
    for (
      const args of [
        ["pilot", "cipher", "encrypt", "-f", "in.txt"],
        ["pilot", "cipher", "encrypt", "-fin.txt", "-o-"],
        ["pilot", "policy", "apply", "--file=policy.yaml"],
        ["pilot", "policy", "apply", "--file", "policy.yaml"],
      ]
    ) {
      const run = await task(dir, env, args);
      // Pilot read the input and the SVID folder, both in the operator's
      // folder, and stopped only at the nexus nobody runs.
      assert.match(
        run.stderr,
        new RegExp(`^Cannot reach SPIKE Nexus at ${nexus}`),
        `${args.join(" ")}: ${run.stderr}`,
      );
      assert.equal(run.code, ExitCode.Unreachable, args.join(" "));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad configuration reaches the mode, which names it in one sentence", async () => {
  const cases: [string, Record<string, string>, string[], RegExp][] = [
    [
      "pilot",
      { SPIKE_NEXUS_API_URL: "not a url" },
      ["pilot", "status"],
      /^SPIKE_NEXUS_API_URL is not a URL: "not a url"$/,
    ],
    [
      "nexus",
      {
        SPIKE_SVID_DIR: "/nonexistent/svid",
        SPIKE_NEXUS_KEEPER_PEERS: "keeper 1,https://keeper-2:8443",
      },
      ["nexus"],
      /SPIKE_NEXUS_KEEPER_PEERS entry "keeper 1" is not a URL/,
    ],
    [
      "keeper",
      { SPIFFE_ENDPOINT_SOCKET: "/tmp/x.sock" },
      ["keeper"],
      /"tcp" or "unix" scheme/,
    ],
  ];
  for (const [what, env, args, sentence] of cases) {
    const run = await launch(env, args);
    assert.notEqual(run.code, 0, what);
    assert.doesNotMatch(run.stderr, /Uncaught|Stack backtrace/, what);
    assert.match(run.stderr.trim(), sentence, `${what}: ${run.stderr}`);
  }
});

Deno.test("a keeper given only a port listens on it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ca = await createDevCa();
    await issueSvidDir(ca, "spiffe://spike.ist/spike/keeper/1", dir);
    const port = freePort();
    const child = new Deno.Command(Deno.execPath(), {
      args: [...await taskArgs("spike"), "keeper"],
      cwd: ROOT,
      env: {
        ...baseEnv(dir),
        SPIKE_SVID_DIR: dir,
        SPIKE_KEEPER_TLS_PORT: String(port),
      },
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    const decoder = new TextDecoder();
    let stopping = false;
    // Read to the end: a closed pipe would fail the keeper's last words.
    for await (const chunk of child.stderr) {
      stderr += decoder.decode(chunk, { stream: true });
      if (!stopping && stderr.includes("listening on port")) {
        stopping = true;
        child.kill("SIGTERM");
      }
    }
    const status = await child.status;
    assert.match(stderr, new RegExp(`listening on port ${port}\\b`), stderr);
    assert.equal(status.code, 0, stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
