// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Picks the SVID source from configuration: an SVID directory when
 * `SPIKE_SVID_DIR` is set, else the SPIFFE Workload API at
 * `SPIFFE_ENDPOINT_SOCKET`.
 *
 * @module
 */
import { envString } from "../config/env.ts";
import { openFileSvidSource } from "./file_source.ts";
import type { SvidSource } from "./source.ts";
import { openWorkloadApiSource } from "./workload_api.ts";

/**
 * Opens the configured SVID source and waits for its first SVID.
 *
 * @returns the live source
 * @throws when the source cannot provide an SVID (see the chosen source)
 */
export function openSvidSource(): Promise<SvidSource> {
  const dir = envString("SPIKE_SVID_DIR", "");
  return dir ? openFileSvidSource(dir) : openWorkloadApiSource();
}
