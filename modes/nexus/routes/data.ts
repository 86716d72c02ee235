// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The data routes of nexus: secrets, policies and the cipher. All of them
 * answer 503 while nexus is locked.
 *
 * @module
 */
import type { NexusConfig } from "../config.ts";
import type { PolicyEngine } from "../policy/engine.ts";
import type { Route } from "../router.ts";
import type { NexusStore } from "../store/open.ts";
import { cipherRoutes } from "./cipher.ts";
import { policyRoutes } from "./policies.ts";
import { secretRoutes } from "./secrets.ts";

/** What the data routes need from nexus. */
export interface DataRouteDeps {
  /** The configuration (cipher size limit). */
  readonly config: NexusConfig;
  /** The store. */
  readonly store: NexusStore;
  /** The compiled policies. */
  readonly engine: PolicyEngine;
}

/**
 * Every data route, keyed with `routeKey(path, action)`.
 *
 * @param deps what the routes need
 * @returns route key -> route
 */
export function dataRoutes(deps: DataRouteDeps): [string, Route][] {
  const { config, store, engine } = deps;
  return [
    ...secretRoutes({ store, engine }),
    ...policyRoutes({ store, engine }),
    ...cipherRoutes({
      maxCipherBytes: config.maxCipherBytes,
      cipherKey: () => store.cipherKey,
      cipherSealKey: () => store.cipherSealKey(),
      engine,
    }),
  ];
}
