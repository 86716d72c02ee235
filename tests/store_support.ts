// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Helpers of the store tests: a root key with its meta, fresh stores of
// each backend, and error assertions.
import assert from "node:assert/strict";
import {
  derivePurposeKeys,
  keyCheckValue,
  type PurposeKeys,
} from "../lib/crypto/kdf.ts";
import { ApiError } from "../lib/wire/errors.ts";
import type { StoreMeta } from "../modes/nexus/store/backend.ts";
import {
  type NexusStore,
  openStore,
  type StoreConfig,
} from "../modes/nexus/store/open.ts";

/** A root key, its store id, purpose keys and the meta of its store. */
export interface StoreKeys {
  readonly root: Uint8Array<ArrayBuffer>;
  readonly storeId: Uint8Array<ArrayBuffer>;
  readonly keys: PurposeKeys;
  readonly meta: StoreMeta;
}

/**
 * A new root key and the meta of a store for it.
 *
 * @param shares share count (threshold 2 when above 0)
 * @returns the keys and meta
 */
export async function newStoreKeys(shares = 0): Promise<StoreKeys> {
  const root = crypto.getRandomValues(new Uint8Array(32));
  const storeId = crypto.getRandomValues(new Uint8Array(16));
  const keys = await derivePurposeKeys(root, storeId);
  return {
    root,
    storeId,
    keys,
    meta: {
      storeId,
      keyCheck: await keyCheckValue(keys),
      threshold: shares === 0 ? 0 : 2,
      shareCount: shares,
      commitments: Array.from(
        { length: shares },
        (_, i) => new Uint8Array(32).fill(i + 1),
      ),
    },
  };
}

/** An unlocked store that closes (and removes its folder) when disposed. */
export interface StoreFixture extends AsyncDisposable {
  readonly store: NexusStore;
  readonly keys: StoreKeys;
  /** The data folder of a SQLite store. */
  readonly dataDir: string | undefined;
}

/**
 * Opens a new, unlocked store of a backend.
 *
 * @param kind the backend
 * @param maxVersions versions kept per secret
 * @param options key limits, re-encryption rate, log
 * @returns the fixture
 */
export async function freshStore(
  kind: "memory" | "sqlite",
  maxVersions = 10,
  options: Pick<StoreConfig, "keyLimits" | "reencryptRate" | "log"> = {},
): Promise<StoreFixture> {
  const dir = kind === "sqlite" ? await Deno.makeTempDir() : undefined;
  const dataDir = dir && `${dir}/data`;
  const store = await openStore({
    backend: kind,
    maxVersions,
    ...options,
    ...(dataDir ? { dataDir } : {}),
  });
  const keys = await newStoreKeys();
  await store.initMeta(keys.meta);
  await store.unlock(keys.keys);
  return {
    store,
    keys,
    dataDir,
    async [Symbol.asyncDispose]() {
      await store.close();
      if (dir) await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Asserts that `p` rejects with an {@linkcode ApiError} of `code`.
 *
 * @param p the promise
 * @param code the wire code
 * @returns the error
 */
export async function rejectsWith(
  p: Promise<unknown>,
  code: string,
): Promise<ApiError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ApiError, `expected ApiError, got ${caught}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}
