// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Encryption of stored fields: AES-256-GCM under the storage purpose key,
 * a fresh nonce per value, and associated data naming exactly where the
 * value lives, so a ciphertext copied to another row or column fails to
 * decrypt.
 *
 * Associated data: the UTF-8 of the JSON array
 * `["spike/v1", table, key, version, field]` (e.g.
 * `["spike/v1","secret_versions","db/creds",3,"data"]`; `version` is null
 * outside `secret_versions`). JSON keeps the encoding unambiguous for any
 * path or name.
 *
 * @module
 */
import { DecryptionError, open, seal } from "../../../lib/crypto/aead.ts";
import { zero } from "../../../lib/crypto/zero.ts";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";

/** The tables whose fields are sealed. */
export type SealedTable = "secrets" | "secret_versions" | "policies";

/** Where a sealed value lives. */
export interface FieldLocation {
  /** The table. */
  readonly table: SealedTable;
  /** The row key: secret path or policy name. */
  readonly key: string;
  /** The version number, for `secret_versions` only. */
  readonly version?: number;
  /** The column. */
  readonly field: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The associated data binding a ciphertext to its location.
 *
 * @param at the location
 * @returns UTF-8 bytes
 */
export function fieldAad(at: FieldLocation): Uint8Array<ArrayBuffer> {
  return encoder.encode(
    JSON.stringify([
      "spike/v1",
      at.table,
      at.key,
      at.version ?? null,
      at.field,
    ]),
  );
}

/** Seals and opens JSON values at their locations under one storage key. */
export class FieldCipher {
  #key: CryptoKey;

  /**
   * Creates the cipher.
   *
   * @param storageKey the storage purpose key (never the cipher-API key)
   */
  constructor(storageKey: CryptoKey) {
    this.#key = storageKey;
  }

  /**
   * Encrypts the JSON of `value` for `at`.
   *
   * @param value any JSON value
   * @param at where the ciphertext will be stored
   * @returns `nonce ‖ ciphertext ‖ tag`
   */
  async seal(
    value: unknown,
    at: FieldLocation,
  ): Promise<Uint8Array<ArrayBuffer>> {
    const plaintext = encoder.encode(JSON.stringify(value));
    try {
      return await seal(this.#key, plaintext, fieldAad(at));
    } finally {
      zero(plaintext);
    }
  }

  /**
   * Decrypts a value sealed for `at`.
   *
   * @param sealed the stored bytes
   * @param at where they were read from
   * @returns the JSON value
   * @throws {ApiError} `api_internal_error` when the bytes do not
   * authenticate (wrong key, or copied from another location) or do not hold
   * JSON; the message names the location, never the content
   */
  async open(
    sealed: Uint8Array<ArrayBuffer>,
    at: FieldLocation,
  ): Promise<unknown> {
    let plaintext: Uint8Array<ArrayBuffer> | undefined;
    try {
      plaintext = await open(this.#key, sealed, fieldAad(at));
      return JSON.parse(decoder.decode(plaintext));
    } catch (e) {
      const why = e instanceof DecryptionError
        ? "wrong storage key, or the value was altered or moved"
        : "the plaintext is not valid JSON";
      throw new ApiError(
        ErrorCode.Internal,
        `Stored ${at.table}.${at.field} of "${at.key}"${
          at.version === undefined ? "" : ` version ${at.version}`
        } failed to decrypt: ${why}`,
      );
    } finally {
      zero(plaintext);
    }
  }
}
