// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * HKDF-SHA256 derivation of purpose keys from the root key, so that no key
 * serves two purposes (key check, keyring wrapping, backup MAC).
 *
 * @module
 */
import { zero } from "./zero.ts";

const encoder = new TextEncoder();

/**
 * Derives `length` bytes from `ikm` with HKDF-SHA256.
 *
 * @param ikm input key material (e.g. the root key)
 * @param salt HKDF salt (e.g. the store id)
 * @param info the purpose label, domain-separating outputs
 * @param length output length in bytes
 * @returns the derived bytes; the caller zeroes them after use
 */
export async function hkdf(
  ikm: Uint8Array<ArrayBuffer>,
  salt: Uint8Array<ArrayBuffer>,
  info: string,
  length: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const base = await crypto.subtle.importKey("raw", ikm, "HKDF", false, [
    "deriveBits",
  ]);
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt, info: encoder.encode(info) },
      base,
      length * 8,
    ),
  );
}

/**
 * The keys nexus derives from the root key; none is extractable. They are
 * about the root key only: the data keys and the cipher-API key live in the
 * store's keyring, wrapped with {@linkcode PurposeKeys.keyring}, so a new
 * root key re-wraps the keyring and re-encrypts nothing.
 */
export interface PurposeKeys {
  /** HMAC-SHA256 key for the key-check value. */
  readonly keyCheck: CryptoKey;
  /** AES-256-GCM key that seals the keyring and wraps its keys. */
  readonly keyring: CryptoKey;
  /**
   * HMAC-SHA256 key of backup files: a backup made under this root key
   * verifies only with it.
   */
  readonly backup: CryptoKey;
  /** The keys of store schema 1, derived only to migrate such a store. */
  readonly schema1?: Schema1Keys;
}

/**
 * The purpose keys of store schema 1, which sealed data directly with keys
 * derived from the root key.
 */
export interface Schema1Keys {
  /** AES-256-GCM key of the schema-1 stored fields (decrypt only). */
  readonly storage: CryptoKey;
  /**
   * The schema-1 cipher-API key, extractable only so that migration can
   * wrap it into the keyring: ciphertexts made before stay decryptable.
   */
  readonly cipher: CryptoKey;
}

async function hkdfKey(
  root: Uint8Array<ArrayBuffer>,
  salt: Uint8Array<ArrayBuffer>,
  info: string,
  extractable: boolean,
  usages: KeyUsage[],
): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey("raw", root, "HKDF", false, [
    "deriveKey",
  ]);
  return await crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt, info: encoder.encode(info) },
    base,
    { name: "AES-GCM", length: 256 },
    extractable,
    usages,
  );
}

/**
 * Derives the purpose keys from the root key and the store id.
 *
 * @param rootKey the 32-byte root key
 * @param storeId the random store id, used as the HKDF salt
 * @param options `schema1`: also derive the keys of a schema-1 store that
 *   is about to be migrated
 * @returns the purpose keys
 */
export async function derivePurposeKeys(
  rootKey: Uint8Array<ArrayBuffer>,
  storeId: Uint8Array<ArrayBuffer>,
  options: { schema1?: boolean } = {},
): Promise<PurposeKeys> {
  const checkRaw = await hkdf(rootKey, storeId, "spike/v1/key-check", 32);
  const backupRaw = await hkdf(rootKey, storeId, "spike/v2/backup", 32);
  const hmac = (raw: Uint8Array<ArrayBuffer>) =>
    crypto.subtle.importKey(
      "raw",
      raw,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
  try {
    const keys = {
      keyCheck: await hmac(checkRaw),
      backup: await hmac(backupRaw),
      keyring: await hkdfKey(rootKey, storeId, "spike/v2/keyring", false, [
        "encrypt",
        "decrypt",
        "wrapKey",
        "unwrapKey",
      ]),
    };
    if (!options.schema1) return keys;
    return {
      ...keys,
      schema1: {
        storage: await hkdfKey(rootKey, storeId, "spike/v1/storage", false, [
          "decrypt",
        ]),
        cipher: await hkdfKey(rootKey, storeId, "spike/v1/cipher", true, [
          "encrypt",
          "decrypt",
        ]),
      },
    };
  } finally {
    zero(checkRaw, backupRaw);
  }
}

const KEY_CHECK_MESSAGE = encoder.encode("spike/v1/key-check-value");

/**
 * Computes the key-check value that the store keeps, proving later that a
 * reconstructed root key is the right one.
 *
 * @param keys purpose keys derived from the candidate root key
 * @returns a 32-byte MAC
 */
export async function keyCheckValue(
  keys: PurposeKeys,
): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(
    await crypto.subtle.sign("HMAC", keys.keyCheck, KEY_CHECK_MESSAGE),
  );
}

/**
 * Whether the candidate keys match a stored key-check value.
 *
 * @param keys purpose keys derived from a candidate root key
 * @param stored the key-check value from the store
 * @returns true when the candidate root key is the store's key
 */
export function verifyKeyCheck(
  keys: PurposeKeys,
  stored: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  return crypto.subtle.verify("HMAC", keys.keyCheck, stored, KEY_CHECK_MESSAGE);
}
