// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Where `secret put` takes its values from, in the forms Vault users know,
 * so that a value need not be a command-line argument (visible in
 * `/proc/<pid>/cmdline` to every local user, and kept in shell history):
 *
 * - `key=-`: the value from standard input (a hidden prompt on a terminal;
 *   from a pipe, every byte as it is, a trailing newline included);
 * - `key=@file`: the value is the file's exact bytes (a trailing newline
 *   included: write files with `printf %s`, not `echo`);
 * - `-` alone: every key and value as one JSON object on standard input;
 * - `@file` alone: the same JSON object from a file;
 * - `key=value`: the value as given.
 *
 * A value must be UTF-8 text (store binary data base64-encoded).
 *
 * @module
 */
import { zero } from "../../lib/crypto/zero.ts";
import { JsonBytesError, parseJsonBytes } from "../../lib/wire/json_bytes.ts";
import { readInput } from "./cipher.ts";
import { usageError } from "./cli_error.ts";
import { readHiddenInput } from "./shard_input.ts";

/** The longest value typed at the hidden prompt of `key=-`. */
const MAX_TYPED_VALUE = 64 * 1024;

/** The key rules of `secret put`, which live with the command. */
export interface KeyRules {
  /** Splits and checks `key=value` arguments (keys, repeats). */
  parsePairs(pairs: readonly string[]): Record<string, string>;
  /** Checks one key. */
  checkKey(key: string): void;
}

/** Where values come from besides the arguments; tests swap it. */
export interface ValueInput {
  /** The value of `key=-`: all of stdin, or a line typed at a hidden prompt. */
  value(key: string): Promise<Uint8Array>;
  /** All of stdin, for `-` alone. */
  stdin(): Promise<Uint8Array>;
  /** A whole file. */
  file(path: string): Promise<Uint8Array>;
}

async function readFileBytes(path: string): Promise<Uint8Array> {
  try {
    return await readInput(path);
  } catch (e) {
    if (
      e instanceof Deno.errors.PermissionDenied ||
      e instanceof Deno.errors.NotCapable
    ) {
      throw usageError(`Cannot read "${path}": permission denied`);
    }
    throw e;
  }
}

/** Standard input and real files. */
export const PROCESS_INPUT: ValueInput = {
  value: (key) =>
    Deno.stdin.isTerminal()
      ? readHiddenInput(
        `Value for "${key}" (hidden; Enter ends it): `,
        MAX_TYPED_VALUE,
        {
          cancelled: "Cancelled: nothing was stored",
          tooLong:
            `The value typed for "${key}" is longer than ${MAX_TYPED_VALUE} bytes: give it as ${key}=@<file>`,
        },
      )
      : readInput("-"),
  stdin: () => readInput("-"),
  file: readFileBytes,
};

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function text(bytes: Uint8Array, what: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw usageError(
      `${what} is not UTF-8 text: store binary data base64-encoded`,
    );
  } finally {
    zero(bytes);
  }
}

/** A JSON object of string values, as `-` or `@file` give it. */
function jsonValues(bytes: Uint8Array, what: string): Record<string, string> {
  let value: unknown;
  try {
    // Strict, unlike JSON.parse: a key given twice is refused.
    value = parseJsonBytes(bytes);
  } catch (e) {
    if (!(e instanceof JsonBytesError)) throw e;
    throw usageError(`${what} is not valid JSON: ${e.message}`);
  } finally {
    zero(bytes);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw usageError(`${what} must hold one JSON object of key: "value"`);
  }
  const values: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      throw usageError(`${what}: the value of "${key}" must be a string`);
    }
    Object.defineProperty(values, key, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return values;
}

/**
 * Resolves the value arguments of `secret put` into the values to store.
 *
 * @param pairs the arguments after the path
 * @param rules the key rules (also applied to a JSON object's keys)
 * @param input standard input and files
 * @returns key -> value, in argument order
 * @throws {CliError} (exit code 2) naming the argument, key, file or rule;
 *   never a value
 */
export async function readPutValues(
  pairs: readonly string[],
  rules: KeyRules,
  input: ValueInput = PROCESS_INPUT,
): Promise<Record<string, string>> {
  const only = pairs.length === 1 ? pairs[0]! : undefined;
  if (only === "-" || only?.startsWith("@")) {
    const values = only === "-"
      ? jsonValues(await input.stdin(), "The JSON on stdin")
      : jsonValues(
        await input.file(only.slice(1)),
        `JSON file "${only.slice(1)}"`,
      );
    if (Object.keys(values).length === 0) {
      throw usageError("A secret needs at least one key and value");
    }
    for (const key of Object.keys(values)) rules.checkKey(key);
    return values;
  }
  if (pairs.includes("-")) {
    throw usageError(
      'A lone "-" (all values as JSON on stdin) cannot be combined with other values',
    );
  }
  const values = rules.parsePairs(pairs);
  const fromStdin = Object.keys(values).filter((k) => values[k] === "-");
  if (fromStdin.length > 1) {
    throw usageError(
      `Only one value can come from stdin, but ${
        fromStdin.map((k) => `"${k}"`).join(" and ")
      } ask for it`,
    );
  }
  for (const key of Object.keys(values)) {
    const given = values[key]!;
    if (given === "-") {
      values[key] = text(await input.value(key), `The value of "${key}"`);
    } else if (given.startsWith("@")) {
      const path = given.slice(1);
      if (path === "") {
        throw usageError(`The value of "${key}" names no file after "@"`);
      }
      values[key] = text(
        await input.file(path),
        `File "${path}" (the value of "${key}")`,
      );
    }
  }
  return values;
}
