// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The backend conformance suite on the SQLite backend.
import { storeConformance } from "./store_conformance.ts";
import { storeLifecycleConformance } from "./store_lifecycle_conformance.ts";
import { freshStore } from "./store_support.ts";

storeConformance("sqlite", (maxVersions) => freshStore("sqlite", maxVersions));
storeLifecycleConformance(
  "sqlite",
  (options) => freshStore("sqlite", 10, options),
);
