// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Asserts the pilot end-to-end tests share: a success, and a failure that
 * is one sentence on stderr with its own exit code and no stack trace.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { RunResult } from "../scripts/cluster.ts";

/**
 * Asserts a successful run and returns its stdout.
 *
 * @param res the finished pilot process
 * @param what the command, for the failure message
 * @returns stdout
 */
export function ok(res: RunResult, what: string): string {
  assert.equal(res.code, 0, `${what}: exit ${res.code}, stderr ${res.stderr}`);
  return res.stdout;
}

/**
 * Asserts a failure with `code`: one sentence on stderr, nothing on stdout.
 *
 * @param res the finished pilot process
 * @param code the expected exit code
 * @param pattern what stderr must say
 */
export function fails(res: RunResult, code: number, pattern: RegExp): void {
  assert.equal(res.code, code, `exit ${res.code}, stderr ${res.stderr}`);
  assert.equal(res.stdout, "");
  assert.match(res.stderr, pattern);
  assert.equal(res.stderr.trimEnd().split("\n").length, 1, res.stderr);
  assert.doesNotMatch(res.stderr, /^\s+at /m);
}
