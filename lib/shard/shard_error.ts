// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The error raised by the shard codec.
 *
 * @module
 */

/**
 * Raised for invalid Shamir parameters, malformed shards and malformed
 * recovery text. The message never carries share bytes or their hex.
 */
export class ShardError extends Error {
  /** Creates the error; `message` must not contain secret material. */
  constructor(message: string) {
    super(message);
    this.name = "ShardError";
  }
}
