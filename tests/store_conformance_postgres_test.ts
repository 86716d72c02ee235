// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The backend conformance suite on the PostgreSQL backend: each test gets
// its own schema on the shared test cluster.
import { openStore, type StoreConfig } from "../modes/nexus/store/open.ts";
import { storeConformance } from "./store_conformance.ts";
import { storeLifecycleConformance } from "./store_lifecycle_conformance.ts";
import { newStoreKeys, type StoreFixture } from "./store_support.ts";
import {
  announceSkip,
  freshSchema,
  pg,
  testDatabase,
  testPool,
} from "./pg_support.ts";

announceSkip("store_conformance_postgres_test.ts");

async function freshPostgresStore(
  maxVersions = 10,
  options: Pick<StoreConfig, "keyLimits" | "reencryptRate"> = {},
): Promise<StoreFixture> {
  const schema = await freshSchema();
  const store = await openStore({
    backend: "postgres",
    postgres: testPool(testDatabase(schema)),
    maxVersions,
    // The grace before older terms go (replicas) would outlast the tests.
    retireGraceMs: 200,
    ...options,
  });
  const keys = await newStoreKeys();
  await store.initMeta(keys.meta);
  await store.unlock(keys.keys);
  return {
    store,
    keys,
    dataDir: undefined,
    async [Symbol.asyncDispose]() {
      await store.close();
    },
  };
}

if (pg) {
  storeConformance("postgres", freshPostgresStore);
  storeLifecycleConformance(
    "postgres",
    (options) => freshPostgresStore(10, options),
  );
}
