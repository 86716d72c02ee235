// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Operational log: one JSON line per event on stderr, level from
 * `SPIKE_SYSTEM_LOG_LEVEL` (default WARN, or the mode's own default).
 * Callers pass identifiers and counts, never secret material.
 *
 * @module
 */
import process from "node:process";
import { ConfigError } from "./config/env.ts";

const LEVELS = { DEBUG: 10, INFO: 20, WARN: 30, ERROR: 40 } as const;
/** A log level name. */
export type Level = keyof typeof LEVELS;

/** The variable that sets the log level. */
export const LOG_LEVEL_VARIABLE = "SPIKE_SYSTEM_LOG_LEVEL";

/** The level names `SPIKE_SYSTEM_LOG_LEVEL` accepts (any letter case). */
export const LOG_LEVELS: readonly Level[] = ["DEBUG", "INFO", "WARN", "ERROR"];

let defaultLevel: Level = "WARN";

function configuredLevel(): Level | undefined {
  const raw = process.env[LOG_LEVEL_VARIABLE]?.trim();
  if (!raw) return undefined;
  const name = raw.toUpperCase();
  return Object.hasOwn(LEVELS, name) ? name as Level : undefined;
}

/**
 * Checks `SPIKE_SYSTEM_LOG_LEVEL`, so a mode can stop its start on an
 * invalid level (loggers themselves fall back to the default level).
 *
 * @throws {ConfigError} when the variable is set but names no level
 */
export function checkLogLevel(): void {
  const raw = process.env[LOG_LEVEL_VARIABLE]?.trim();
  if (raw && configuredLevel() === undefined) {
    throw new ConfigError(
      `${LOG_LEVEL_VARIABLE} must be one of ${
        LOG_LEVELS.join(", ")
      }, got "${raw}"`,
    );
  }
}

/**
 * Sets the level used while `SPIKE_SYSTEM_LOG_LEVEL` is unset, for every
 * logger of the process, including those created before the call.
 *
 * @param level e.g. `ERROR` for a CLI whose errors are one sentence
 */
export function setDefaultLogLevel(level: Level): void {
  defaultLevel = level;
}

// Resolved at every line rather than once per logger: many loggers are
// created when their module loads, before a mode sets its default.
function threshold(): number {
  return LEVELS[configuredLevel() ?? defaultLevel];
}

const encoder = new TextEncoder();
const deno = (globalThis as { Deno?: typeof Deno }).Deno;

// Deno writes synchronously, so a line is out before a crash or an exit;
// on Node.js (the workload SDK) stderr writes are synchronous for files
// and pipes already.
function writeLine(line: string): void {
  if (deno) deno.stderr.writeSync(encoder.encode(line));
  else process.stderr.write(line);
}

/** A logger bound to a component name. */
export interface Logger {
  /** Logs at DEBUG. */
  debug(msg: string, fields?: Record<string, unknown>): void;
  /** Logs at INFO. */
  info(msg: string, fields?: Record<string, unknown>): void;
  /** Logs at WARN. */
  warn(msg: string, fields?: Record<string, unknown>): void;
  /** Logs at ERROR. */
  error(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * Creates a logger for a component. An invalid `SPIKE_SYSTEM_LOG_LEVEL`
 * logs at the default level here; {@linkcode checkLogLevel} reports it.
 *
 * @param component e.g. `nexus`, `keeper`
 * @returns the logger
 */
export function createLogger(component: string): Logger {
  const write = (
    level: Level,
    msg: string,
    fields?: Record<string, unknown>,
  ) => {
    if (LEVELS[level] < threshold()) return;
    const line = JSON.stringify({
      time: new Date().toISOString(),
      level,
      component,
      msg,
      ...fields,
    });
    writeLine(line + "\n");
  };
  return {
    debug: (m, f) => write("DEBUG", m, f),
    info: (m, f) => write("INFO", m, f),
    warn: (m, f) => write("WARN", m, f),
    error: (m, f) => write("ERROR", m, f),
  };
}
