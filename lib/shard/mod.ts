// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The shard codec: deterministic Shamir split of the root key, reconstruction,
 * commitments and recovery text.
 *
 * @module
 */
export * from "./combine.ts";
export * from "./commitment.ts";
export * from "./library_format.ts";
export * from "./recovery_text.ts";
export * from "./shamir_params.ts";
export * from "./shard.ts";
export * from "./shard_error.ts";
export * from "./split.ts";
