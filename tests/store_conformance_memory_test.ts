// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The backend conformance suite on the memory backend, and what the store
// does before it is unlocked.
import assert from "node:assert/strict";
import { ApiError } from "../lib/wire/errors.ts";
import { openStore } from "../modes/nexus/store/open.ts";
import { storeConformance } from "./store_conformance.ts";
import { storeLifecycleConformance } from "./store_lifecycle_conformance.ts";
import { freshStore, newStoreKeys } from "./store_support.ts";

storeConformance("memory", (maxVersions) => freshStore("memory", maxVersions));
storeLifecycleConformance(
  "memory",
  (options) => freshStore("memory", 10, options),
);

Deno.test("the store refuses data access while locked", async () => {
  const store = await openStore({ backend: "memory", maxVersions: 10 });
  try {
    assert.equal(store.unlocked, false);
    for (
      const get of [
        () => store.secrets,
        () => store.policies,
        () => store.cipherKey,
      ]
    ) {
      assert.throws(
        get,
        (e: unknown) => e instanceof ApiError && e.code === "state_not_ready",
      );
    }
    assert.equal(await store.readMeta(), undefined);
    // No meta yet: unlock is refused.
    await assert.rejects(store.unlock((await newStoreKeys()).keys), {
      name: "StoreError",
    });
  } finally {
    await store.close();
  }
});
