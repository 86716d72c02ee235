// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A short, public name of a store's root key, so an operator can tell
 * which key a backup, a status and a set of recovery shards belong to
 * without any key material: the first 8 bytes of
 * `SHA-256("spike/v2/key-id" ‖ store id ‖ key check)`, in hex. It changes
 * with every rekey and is the same for every copy of one store.
 *
 * @module
 */

const LABEL = new TextEncoder().encode("spike/v2/key-id");

/**
 * The key id of a store's root key.
 *
 * @param storeId the store id
 * @param keyCheck the key-check value of the key
 * @returns 16 lowercase hex digits
 */
export async function keyId(
  storeId: Uint8Array,
  keyCheck: Uint8Array,
): Promise<string> {
  const message = new Uint8Array(
    LABEL.length + storeId.length + keyCheck.length,
  );
  message.set(LABEL);
  message.set(storeId, LABEL.length);
  message.set(keyCheck, LABEL.length + storeId.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", message));
  return digest.subarray(0, 8).toHex();
}
