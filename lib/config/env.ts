// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Typed reads of SPIKE's environment variables. A value that is set but
 * invalid is an error naming the variable, never a silent default.
 *
 * Read through `node:process`, so the workload SDK runs on Node.js too; in
 * Deno it is `Deno.env` with the same permission checks.
 *
 * @module
 */
import process from "node:process";
import { parseDuration } from "./duration.ts";

/** Raised for an environment variable with an invalid value. */
export class ConfigError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Reads a variable; unset or blank gives `fallback`.
 *
 * @param name the variable name
 * @param fallback the default
 * @returns the trimmed value or the default
 */
export function envString(name: string, fallback: string): string {
  const value = process.env[name]?.trim();
  return value ? value : fallback;
}

/**
 * Reads a positive integer variable.
 *
 * @param name the variable name
 * @param fallback the default
 * @param range inclusive bounds
 * @returns the value or the default
 * @throws {ConfigError} when set but not an integer within the range
 */
export function envInt(
  name: string,
  fallback: number,
  range: { min: number; max: number } = {
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
  },
): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < range.min || value > range.max) {
    throw new ConfigError(
      `${name} must be a whole number from ${range.min} to ${range.max}, got "${raw}"`,
    );
  }
  return value;
}

/**
 * Reads a Go-style duration variable (`30s`, `5m`) in milliseconds.
 *
 * @param name the variable name
 * @param fallback the default, in milliseconds
 * @returns the value or the default
 * @throws {ConfigError} when set but not a duration
 */
export function envDuration(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  try {
    return parseDuration(raw);
  } catch (e) {
    throw new ConfigError(`${name}: ${(e as Error).message}`);
  }
}

/**
 * The longest timer delay, in ms: a longer one fires at once (JavaScript
 * timers hold a 32-bit signed delay).
 */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Reads a duration that must be above zero and fit a timer, such as a
 * server timeout that zero would switch off, or a period that zero (or an
 * overflowing value) would turn into a busy loop.
 *
 * @param name the variable name
 * @param fallback the default in ms
 * @returns the duration in ms
 * @throws {ConfigError} when set to something invalid, not positive, or
 *   longer than {@linkcode MAX_TIMER_MS}
 */
export function envPositiveDuration(name: string, fallback: number): number {
  const ms = envDuration(name, fallback);
  const raw = process.env[name]?.trim();
  if (ms <= 0) {
    throw new ConfigError(
      `${name} must be a positive duration, e.g. 10s, got "${raw}"`,
    );
  }
  if (ms > MAX_TIMER_MS) {
    throw new ConfigError(
      `${name} must be at most 596h (the longest timer), got "${raw}"`,
    );
  }
  return ms;
}

/**
 * Reads a boolean variable (`true`/`false`, `1`/`0`).
 *
 * @param name the variable name
 * @param fallback the default
 * @returns the value or the default
 * @throws {ConfigError} when set to anything else
 */
export function envBool(name: string, fallback: boolean): boolean {
  const raw = process.env[name]?.trim().toLowerCase();
  if (!raw) return fallback;
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

/**
 * Parses a listen address as SPIKE writes it (`:8443`, `127.0.0.1:8443`).
 *
 * @param name the variable name, for the error
 * @param value the address
 * @returns host (empty for all interfaces) and port
 * @throws {ConfigError} when the port is missing or out of range
 */
export function parseListenAddress(
  name: string,
  value: string,
): { host: string; port: number } {
  const colon = value.lastIndexOf(":");
  const host = colon === -1
    ? ""
    : value.slice(0, colon).replace(/^\[|\]$/g, "");
  const portText = colon === -1 ? value : value.slice(colon + 1);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 0 || port > 65535) {
    throw new ConfigError(
      `${name} must be [host]:port with a port from 0 to 65535, got "${value}"`,
    );
  }
  return { host, port };
}
