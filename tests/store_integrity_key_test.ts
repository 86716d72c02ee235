// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The integrity key in the keyring: made with a new keyring, added to an
// older one, kept by a rekey's re-wrap, and bound to its purpose.
import assert from "node:assert/strict";
import { derivePurposeKeys } from "../lib/crypto/kdf.ts";
import {
  type KeyringDocument,
  newKeyring,
  openKeyring,
  rewrapKeyring,
  sealKeyring,
  withIntegrityKey,
} from "../modes/nexus/store/keyring.ts";

const storeId = crypto.getRandomValues(new Uint8Array(16));
const message = new TextEncoder().encode("a store digest");

async function keyringKey(): Promise<CryptoKey> {
  return (await derivePurposeKeys(
    crypto.getRandomValues(new Uint8Array(32)),
    storeId,
  )).keyring;
}

async function made(kek: CryptoKey) {
  const now = new Date().toISOString();
  return await openKeyring(
    kek,
    await newKeyring(kek, { rootKeyCreated: now, now }),
  );
}

Deno.test("a new keyring has an integrity key, and a rekey's re-wrap keeps it", async () => {
  const kek = await keyringKey();
  const keyring = await made(kek);
  assert.ok(keyring.integrityKey);
  const next = await keyringKey();
  const document = await rewrapKeyring(kek, next, keyring.document);
  assert.notEqual(document.integrity, keyring.document.integrity);
  const rewrapped = await openKeyring(next, await sealKeyring(next, document));
  assert.deepEqual(
    rewrapped.integrityKey!.mac(message),
    keyring.integrityKey!.mac(message),
  );
  // Reopened with the same document, the key object is reused.
  const again = await openKeyring(next, rewrapped.sealed, rewrapped);
  assert.equal(again.integrityKey, rewrapped.integrityKey);
});

Deno.test("a keyring from before schema 3 opens without an integrity key and gets one once", async () => {
  const kek = await keyringKey();
  const { integrity: _, ...older } = (await made(kek)).document;
  const old = await openKeyring(kek, await sealKeyring(kek, older));
  assert.equal(old.integrityKey, undefined);
  assert.equal(old.document.integrity, undefined);
  const added = await withIntegrityKey(kek, old.document);
  assert.equal(typeof added.integrity, "string");
  assert.equal(await withIntegrityKey(kek, added), added);
  const opened = await openKeyring(kek, await sealKeyring(kek, added));
  assert.ok(opened.integrityKey);
});

Deno.test("an integrity key is bound to its purpose: another key moved into its place does not open", async () => {
  const kek = await keyringKey();
  const document = (await made(kek)).document;
  const moved: KeyringDocument = { ...document, integrity: document.cipher };
  await assert.rejects(
    openKeyring(kek, await sealKeyring(kek, moved)),
    /does not open with this store's root key/,
  );
  const wrongType: unknown = { ...document, integrity: 7 };
  await assert.rejects(
    openKeyring(
      kek,
      await sealKeyring(kek, wrongType as KeyringDocument),
    ),
    /does not open/,
  );
});
