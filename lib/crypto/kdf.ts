// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * HKDF-SHA256 derivation of purpose keys from the root key, so that no key
 * serves two purposes (storage, cipher API, key check).
 *
 * @module
 */
import { importAesKey } from "./aead.ts";
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

/** The keys nexus derives from the root key; none is extractable. */
export interface PurposeKeys {
  /** AES-256-GCM key for values at rest. */
  readonly storage: CryptoKey;
  /** AES-256-GCM key for the cipher API (never opens stored blobs). */
  readonly cipher: CryptoKey;
  /** HMAC-SHA256 key for the key-check value. */
  readonly keyCheck: CryptoKey;
}

async function aesKey(
  root: Uint8Array<ArrayBuffer>,
  salt: Uint8Array<ArrayBuffer>,
  info: string,
) {
  const raw = await hkdf(root, salt, info, 32);
  try {
    return await importAesKey(raw);
  } finally {
    zero(raw);
  }
}

/**
 * Derives the purpose keys from the root key and the store id.
 *
 * @param rootKey the 32-byte root key
 * @param storeId the random store id, used as the HKDF salt
 * @returns the purpose keys
 */
export async function derivePurposeKeys(
  rootKey: Uint8Array<ArrayBuffer>,
  storeId: Uint8Array<ArrayBuffer>,
): Promise<PurposeKeys> {
  const checkRaw = await hkdf(rootKey, storeId, "spike/v1/key-check", 32);
  try {
    return {
      storage: await aesKey(rootKey, storeId, "spike/v1/storage"),
      cipher: await aesKey(rootKey, storeId, "spike/v1/cipher"),
      keyCheck: await crypto.subtle.importKey(
        "raw",
        checkRaw,
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign", "verify"],
      ),
    };
  } finally {
    zero(checkRaw);
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
