// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The settings of the key and data lifecycle: the nonce budget and age of
 * data keys, the pace of re-encryption, and how long a rekey waits for its
 * keepers.
 *
 * @module
 */
import {
  ConfigError,
  envDuration,
  envInt,
  envPositiveDuration,
  MAX_TIMER_MS,
} from "../../lib/config/env.ts";
import { DEFAULT_MAX_ENCRYPTIONS } from "./store/key_manager.ts";

/** What nexus reads about the key and data lifecycle. */
export interface LifecycleConfig {
  /** AES-GCM encryptions per key before its term rotates. */
  readonly keyMaxEncryptions: number;
  /** Age after which the active data-key term rotates; undefined: never. */
  readonly keyRotationPeriodMs: number | undefined;
  /** Paths per second a re-encryption looks at. */
  readonly reencryptRate: number;
  /** How long a rekey waits for every keeper to take its new shard. */
  readonly rekeyTimeoutMs: number;
}

/**
 * Reads the lifecycle settings.
 *
 * @returns the settings
 * @throws {ConfigError} naming the first invalid variable
 */
export function readLifecycleConfig(): LifecycleConfig {
  const period = envDuration("SPIKE_NEXUS_KEY_ROTATION_PERIOD", 0);
  if (period < 0 || period > MAX_TIMER_MS) {
    throw new ConfigError(
      "SPIKE_NEXUS_KEY_ROTATION_PERIOD must be a duration up to 596h, or 0 for no rotation by age",
    );
  }
  return {
    keyMaxEncryptions: envInt(
      "SPIKE_NEXUS_KEY_MAX_ENCRYPTIONS",
      DEFAULT_MAX_ENCRYPTIONS,
      // Above 2^32 random 96-bit nonces pass NIST SP 800-38D's bound.
      { min: 16, max: 2 ** 32 },
    ),
    keyRotationPeriodMs: period === 0 ? undefined : period,
    reencryptRate: envInt("SPIKE_NEXUS_REENCRYPT_RATE", 1000, {
      min: 1,
      max: 1_000_000,
    }),
    rekeyTimeoutMs: envPositiveDuration("SPIKE_NEXUS_REKEY_TIMEOUT", 30_000),
  };
}
