// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Tests that run a deno.json task as the task itself would, so the task's
// flags and the code cannot drift apart.
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;

/**
 * The arguments of a `deno run …` task in deno.json, without `deno`, with
 * the script named by its absolute path.
 *
 * @param name the task's name
 * @returns the arguments, ending with the script
 */
export async function taskArgs(name: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const task: unknown = config.tasks?.[name];
  assert.equal(typeof task, "string", `deno.json has no "${name}" task`);
  const [deno, ...args] = (task as string).trim().split(/\s+/);
  assert.equal(deno, "deno");
  assert.equal(args[0], "run");
  const script = args.at(-1)!;
  assert.match(script, /\.ts$/, `the "${name}" task does not end in a script`);
  return [...args.slice(0, -1), `${ROOT}${script}`];
}
