// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The one error type pilot commands raise for an expected failure.
 *
 * @module
 */
import { ExitCode, type ExitCodeValue } from "./exit_codes.ts";

/**
 * An expected failure: `main` prints the message (one sentence) on stderr
 * and exits with `exitCode`. Messages never carry secret values or shards.
 */
export class CliError extends Error {
  /** The process exit code for this failure. */
  readonly exitCode: ExitCodeValue;
  /** Creates the error. */
  constructor(
    message: string,
    exitCode: ExitCodeValue = ExitCode.Failure,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/**
 * A usage error (exit code 2).
 *
 * @param message one sentence saying what is wrong
 * @returns the error, to throw
 */
export function usageError(message: string): CliError {
  return new CliError(message, ExitCode.Usage);
}

/**
 * Lowercases the first letter of a word (not of an acronym such as TLS),
 * to continue a sentence with another error's message.
 *
 * @param text a message
 * @returns the message, continuing a sentence
 */
export function lowerFirst(text: string): string {
  return /^[A-Z][a-z]/.test(text)
    ? text.charAt(0).toLowerCase() + text.slice(1)
    : text;
}
