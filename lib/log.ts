// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Operational log: one JSON line per event on stderr, level from
 * `SPIKE_SYSTEM_LOG_LEVEL` (default WARN). Callers pass identifiers and
 * counts, never secret material.
 *
 * @module
 */

const LEVELS = { DEBUG: 10, INFO: 20, WARN: 30, ERROR: 40 } as const;
/** A log level name. */
export type Level = keyof typeof LEVELS;

function threshold(): number {
  const name = (Deno.env.get("SPIKE_SYSTEM_LOG_LEVEL") ?? "WARN").toUpperCase();
  return LEVELS[name as Level] ?? LEVELS.WARN;
}

const encoder = new TextEncoder();

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
 * Creates a logger for a component.
 *
 * @param component e.g. `nexus`, `keeper`
 * @returns the logger
 */
export function createLogger(component: string): Logger {
  const min = threshold();
  const write = (
    level: Level,
    msg: string,
    fields?: Record<string, unknown>,
  ) => {
    if (LEVELS[level] < min) return;
    const line = JSON.stringify({
      time: new Date().toISOString(),
      level,
      component,
      msg,
      ...fields,
    });
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  };
  return {
    debug: (m, f) => write("DEBUG", m, f),
    info: (m, f) => write("INFO", m, f),
    warn: (m, f) => write("WARN", m, f),
    error: (m, f) => write("ERROR", m, f),
  };
}
