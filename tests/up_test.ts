// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task up`, run as an operator runs it: the real `deno task` from
 * another folder, in its own process group as a terminal would start it.
 * Every command it prints works as printed, from any folder (the workload
 * is refused until the example policy exists, then reads the secret), and
 * Ctrl-C (a SIGINT to the whole group, then the one `deno task` forwards)
 * removes everything it made, during start-up too.
 */
import assert from "node:assert/strict";
import { replicaInstructions } from "../scripts/up_postgres.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

const HAS_SETSID = await new Deno.Command("setsid", { args: ["--version"] })
  .output().then((o) => o.success, () => false);

/** `deno task up` in a new session, with its own empty TMPDIR. */
class Up {
  readonly child: Deno.ChildProcess;
  readonly #decoder = new TextDecoder();
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  stdout = "";

  constructor(readonly tmp: string, cwd: string) {
    this.child = new Deno.Command("setsid", {
      args: [Deno.execPath(), "task", `--config=${ROOT}/deno.json`, "up"],
      cwd,
      env: { TMPDIR: tmp, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#reader = this.child.stdout.getReader();
  }

  /** Reads stdout until it holds `text`. */
  async waitFor(text: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.stdout.includes(text)) {
      assert.ok(Date.now() < deadline, `no "${text}" in: ${this.stdout}`);
      const { value, done } = await this.#reader.read();
      assert.ok(!done, `up ended before "${text}": ${this.stdout}`);
      this.stdout += this.#decoder.decode(value, { stream: true });
    }
  }

  /** Ctrl-C on a terminal: SIGINT to the group, then deno task's own. */
  controlC(): void {
    Deno.kill(-this.child.pid, "SIGINT");
    Deno.kill(this.child.pid, "SIGINT");
  }

  /** Kills whatever is left of the group (after a failed test) and waits. */
  async kill(): Promise<void> {
    try {
      Deno.kill(-this.child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
    await this.child.status;
  }

  /** Waits for the exit, draining stdout. */
  async exit(): Promise<Deno.CommandStatus> {
    for (;;) {
      const { value, done } = await this.#reader.read();
      if (done) break;
      this.stdout += this.#decoder.decode(value, { stream: true });
    }
    return await this.child.status;
  }
}

async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names;
}

async function bash(script: string, cwd: string) {
  const out = await new Deno.Command("bash", {
    args: ["-c", script],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

Deno.test({
  name:
    "deno task up: every printed command works from any folder, and Ctrl-C removes the cluster",
  ignore: !HAS_SETSID,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "spike-up-tmp-" });
    const elsewhere = await Deno.makeTempDir({ prefix: "spike-up-cwd-" });
    const up = new Up(tmp, elsewhere);
    try {
      await up.waitFor("Press Ctrl-C");
      const lines = up.stdout.split("\n");
      const preamble = lines.filter((l) =>
        l.startsWith("  spike() ") || l.startsWith("  export ")
      ).join("\n");
      const commands = lines.filter((l) => l.startsWith("  SPIKE_SVID_DIR="))
        .map((l) => l.trim());
      assert.match(preamble, /deno task -q --config=/);
      const expected: [RegExp, number, RegExp?][] = [
        [/secret put apps\/demo\/db password=s3cret$/, 0],
        [/secret get apps\/demo\/db$/, 0, /^password: s3cret\n$/],
        [/ status$/, 0, /State:\s+unlocked/],
        [/workload .*secret get apps\/demo\/db password$/, 4],
        [/policy create --name demo-read /, 0],
        [/workload .*secret get apps\/demo\/db password$/, 0, /^s3cret\n$/],
        [/operator recover$/, 0],
        // Printed for after a total loss; now nexus is unlocked.
        [/operator restore \S+spike\.recovery\.1\.txt$/, 7],
        // The audit log is a file of its own, whole.
        [/superuser .*audit verify \S+\/logs\/audit\.log$/, 0, /^Checked /],
      ];
      assert.equal(commands.length, expected.length, commands.join("\n"));
      for (const [i, [pattern, code, out]] of expected.entries()) {
        const command = commands[i]!;
        assert.match(command, pattern);
        const res = await bash(`${preamble}\n${command}`, elsewhere);
        assert.equal(res.code, code, `${command}\n${res.stderr}`);
        if (out) assert.match(res.stdout, out, command);
        // deno task -q echoes nothing, so no secret reaches stderr.
        assert.doesNotMatch(res.stderr, /s3cret|Task spike/);
      }
      up.controlC();
      const status = await up.exit();
      assert.equal(status.code, 0);
      assert.deepEqual(await entries(tmp), [], "up left files behind");
    } finally {
      await up.kill();
      await Deno.remove(tmp, { recursive: true });
      await Deno.remove(elsewhere, { recursive: true });
    }
  },
});

Deno.test({
  name: "deno task up: Ctrl-C during start-up removes what was made",
  ignore: !HAS_SETSID,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "spike-up-tmp-" });
    const up = new Up(tmp, tmp);
    try {
      // Once the cluster's folder exists, before nexus unlocks.
      const deadline = Date.now() + 60_000;
      while (
        !(await entries(tmp)).some((n) => n.startsWith("spike-")) &&
        Date.now() < deadline
      ) {
        await new Promise((r) => setTimeout(r, 20));
      }
      up.controlC();
      const status = await up.exit();
      assert.equal(status.code, 0, up.stdout);
      assert.deepEqual(await entries(tmp), [], "up left files behind");
    } finally {
      await up.kill();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("deno task up --postgres prints commands for any folder that echo no secret", () => {
  const text = replicaInstructions({
    root: "/src/spike for deno",
    dir: "/tmp/spike-1",
    pgPort: 5433,
    superuserSvidDir: "/tmp/spike-1/svid/superuser",
    urls: ["https://127.0.0.1:1", "https://127.0.0.1:2", "https://127.0.0.1:3"],
  });
  const lines = text.split("\n").map((l) => l.trim());
  // The same shell function as up's: deno task -q, this repository's deno.json.
  assert.ok(
    lines.includes(
      `spike() { deno task -q --config='/src/spike for deno/deno.json' spike "$@"; }`,
    ),
    text,
  );
  const commands = lines.filter((l) => l.startsWith("SPIKE_SVID_DIR="));
  assert.equal(commands.length, 3, text);
  for (const [i, command] of commands.entries()) {
    assert.match(
      command,
      new RegExp(
        `SPIKE_NEXUS_API_URL=https://127\\.0\\.0\\.1:${i + 1} spike pilot `,
      ),
    );
  }
  // Without -q, deno task echoes "password=s3cret" to stderr.
  assert.doesNotMatch(text, /deno task spike|run from/);
});
