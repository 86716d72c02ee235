// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * AES-256-GCM with a fresh 96-bit nonce per message, over WebCrypto keys
 * that are never extractable.
 *
 * @module
 */

/** AES-GCM nonce length in bytes. */
export const NONCE_BYTES = 12;
/** AES-GCM tag length in bytes. */
export const TAG_BYTES = 16;

/** Raised when a ciphertext fails authentication or is malformed. */
export class DecryptionError extends Error {
  /** Creates the error; the message never carries data. */
  constructor(message = "Decryption failed") {
    super(message);
    this.name = "DecryptionError";
  }
}

/**
 * Encrypts `plaintext` with a fresh random nonce. WebCrypto copies
 * `plaintext` when called, so the caller may zero it once this settles.
 *
 * @param key an AES-GCM key
 * @param plaintext the bytes to encrypt
 * @param aad associated data the ciphertext is bound to
 * @param prefix bytes to put in front (a wire format's version byte), so a
 *   caller needs no second copy of a large ciphertext
 * @returns `prefix ‖ nonce ‖ ciphertext ‖ tag`
 */
export async function seal(
  key: CryptoKey,
  plaintext: Uint8Array<ArrayBuffer>,
  aad: Uint8Array<ArrayBuffer> = new Uint8Array(0),
  prefix: Uint8Array = new Uint8Array(0),
): Promise<Uint8Array<ArrayBuffer>> {
  const { nonce, ciphertext: ct } = await sealParts(key, plaintext, aad);
  const out = new Uint8Array(prefix.length + NONCE_BYTES + ct.length);
  out.set(prefix);
  out.set(nonce, prefix.length);
  out.set(ct, prefix.length + NONCE_BYTES);
  return out;
}

/**
 * Encrypts `plaintext` with a fresh random nonce and returns the parts as
 * WebCrypto made them, for a wire format that sends them apart (no copy of
 * a large ciphertext into one buffer).
 *
 * @param key an AES-GCM key
 * @param plaintext the bytes to encrypt
 * @param aad associated data the ciphertext is bound to
 * @returns the nonce, and the ciphertext with the tag appended
 */
export async function sealParts(
  key: CryptoKey,
  plaintext: Uint8Array<ArrayBuffer>,
  aad: Uint8Array<ArrayBuffer> = new Uint8Array(0),
): Promise<
  { nonce: Uint8Array<ArrayBuffer>; ciphertext: Uint8Array<ArrayBuffer> }
> {
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const ciphertext = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce, additionalData: aad },
      key,
      plaintext,
    ),
  );
  return { nonce, ciphertext };
}

/**
 * Decrypts a `nonce ‖ ciphertext ‖ tag` blob made by {@linkcode seal}.
 *
 * @param key the AES-GCM key
 * @param sealed the blob
 * @param aad the associated data used when sealing
 * @returns the plaintext
 * @throws {DecryptionError} when the blob is short or fails authentication
 */
export function open(
  key: CryptoKey,
  sealed: Uint8Array<ArrayBuffer>,
  aad: Uint8Array<ArrayBuffer> = new Uint8Array(0),
): Promise<Uint8Array<ArrayBuffer>> {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) {
    return Promise.reject(new DecryptionError("Ciphertext is too short"));
  }
  return openParts(
    key,
    sealed.subarray(0, NONCE_BYTES),
    sealed.subarray(NONCE_BYTES),
    aad,
  );
}

/**
 * Decrypts a ciphertext (with its tag appended) under an explicit nonce.
 *
 * @param key the AES-GCM key
 * @param nonce the 12-byte nonce
 * @param ciphertext ciphertext followed by the 16-byte tag
 * @param aad associated data
 * @returns the plaintext
 * @throws {DecryptionError} when authentication fails
 */
export async function openParts(
  key: CryptoKey,
  nonce: Uint8Array<ArrayBuffer>,
  ciphertext: Uint8Array<ArrayBuffer>,
  aad: Uint8Array<ArrayBuffer> = new Uint8Array(0),
): Promise<Uint8Array<ArrayBuffer>> {
  if (nonce.length !== NONCE_BYTES || ciphertext.length < TAG_BYTES) {
    throw new DecryptionError("Ciphertext is malformed");
  }
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: nonce, additionalData: aad },
        key,
        ciphertext,
      ),
    );
  } catch {
    throw new DecryptionError();
  }
}
