// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Runs the test suite N times in a row and lists every test that failed at
 * least once, so a race that fails one run in five is seen before CI sees it.
 *
 * ```sh
 * deno task test:repeat 5              # five runs
 * deno task test:repeat 5 --load       # with a busy loop on another core
 * deno task test:repeat 3 tests/nexus_lifecycle_test.ts
 * ```
 *
 * Each run is the `test` task's own command (read from deno.json, so the two
 * cannot drift apart) with a JUnit report, from which the failures are read.
 * Exits 0 when every run passed, 1 otherwise.
 *
 * @module
 */
import { parseArgs } from "node:util";

const ROOT = new URL("..", import.meta.url).pathname;

/** One failed test case of one run. */
export interface Failure {
  /** The test's name (with its steps joined by " > "). */
  readonly name: string;
  /** The file it is in, as the report names it. */
  readonly file: string;
}

/**
 * The failed test cases in a JUnit report written by `deno test`.
 *
 * @param xml the report
 * @returns one entry per failed case
 */
export function junitFailures(xml: string): Failure[] {
  const failures: Failure[] = [];
  const testcase = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const match of xml.matchAll(testcase)) {
    const body = match[3] ?? "";
    if (!/<failure\b/.test(body)) continue;
    const attrs = match[1] ?? "";
    failures.push({
      name: unescapeXml(attribute(attrs, "name")),
      file: unescapeXml(attribute(attrs, "classname")),
    });
  }
  return failures;
}

function attribute(attrs: string, name: string): string {
  return new RegExp(`\\b${name}="([^"]*)"`).exec(attrs)?.[1] ?? "";
}

function unescapeXml(text: string): string {
  return text.replaceAll("&lt;", "<").replaceAll("&gt;", ">")
    .replaceAll("&quot;", '"').replaceAll("&apos;", "'")
    .replaceAll("&amp;", "&");
}

/**
 * The `deno test` arguments of the `test` task in deno.json.
 *
 * @returns the arguments after `deno`, ending with the test folder
 */
export async function testTaskArgs(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const task = config.tasks?.test;
  if (typeof task !== "string" || !task.startsWith("deno test ")) {
    throw new Error(
      'The "test" task in deno.json is not a "deno test" command',
    );
  }
  return task.trim().split(/\s+/).slice(1);
}

// A busy loop in its own process, so the suite runs with one core taken.
function startLoad(): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", "for (;;) {}"],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { load: { type: "boolean" }, help: { type: "boolean" } },
    allowPositionals: true,
  });
  const [count, ...files] = positionals;
  const runs = Number(count);
  if (values.help || !Number.isSafeInteger(runs) || runs < 1) {
    console.error(
      "Usage: deno task test:repeat <runs> [--load] [test files…]",
    );
    return values.help ? 0 : 2;
  }
  const base = await testTaskArgs();
  const args = files.length > 0 ? [...base.slice(0, -1), ...files] : base;
  const report = await Deno.makeTempFile({ suffix: ".xml" });
  const seen = new Map<string, { failure: Failure; runs: number[] }>();
  let failedRuns = 0;
  const load = values.load ? startLoad() : undefined;
  try {
    for (let run = 1; run <= runs; run++) {
      const started = Date.now();
      const { code } = await new Deno.Command(Deno.execPath(), {
        args: [...args.slice(0, 1), `--junit-path=${report}`, ...args.slice(1)],
        cwd: ROOT,
        stdout: "null",
        stderr: "null",
      }).output();
      const failures = junitFailures(await Deno.readTextFile(report));
      for (const failure of failures) {
        const key = `${failure.file}\u0000${failure.name}`;
        const entry = seen.get(key) ?? { failure, runs: [] };
        entry.runs.push(run);
        seen.set(key, entry);
      }
      if (code !== 0) failedRuns++;
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      const outcome = code === 0
        ? "passed"
        : `failed (${failures.length} tests)`;
      console.log(`run ${run}/${runs}: ${outcome} in ${seconds} s`);
      if (code !== 0 && failures.length === 0) {
        console.log(
          "  the run failed outside any test; run it alone to see why",
        );
      }
    }
  } finally {
    load?.kill();
    await load?.status;
    await Deno.remove(report);
  }
  if (failedRuns === 0) {
    console.log(`every test passed in all ${runs} runs`);
    return 0;
  }
  console.log(`${failedRuns} of ${runs} runs failed; tests that failed:`);
  for (const { failure, runs: failed } of seen.values()) {
    console.log(
      `  ${failure.name} (${failure.file}): ${failed.length} of ${runs} runs`,
    );
  }
  return 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
