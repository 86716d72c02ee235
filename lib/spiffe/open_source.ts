// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Picks the SVID source from configuration: an SVID directory when
 * `SPIKE_SVID_DIR` is set, else the SPIFFE Workload API at
 * `SPIFFE_ENDPOINT_SOCKET`. Each source is imported only when chosen, so a
 * process on SVID files never loads gRPC (a visible share of start time).
 *
 * @module
 */
import { envString } from "../config/env.ts";
import { createLogger } from "../log.ts";
import { readBundleConfig } from "./bundle_config.ts";
import { adoptOwnTrustDomain } from "./roles.ts";
import type { SvidSource } from "./source.ts";

/**
 * Opens the configured SVID source and waits for its first SVID. Roles
 * whose trust roots no `SPIKE_TRUST_ROOT*` variable sets are then trusted
 * in that SVID's trust domain (see `adoptOwnTrustDomain`).
 *
 * @param options `watch: false` for a short-lived process that needs no
 *   file watcher (SVID directory only; polling still applies)
 * @returns the live source
 * @throws {ConfigError} when a bundle setting or federated bundle file is
 *   invalid
 * @throws when the source cannot provide an SVID (see the chosen source)
 */
export async function openSvidSource(
  options: { watch?: boolean } = {},
): Promise<SvidSource> {
  const dir = envString("SPIKE_SVID_DIR", "");
  if (dir) {
    const { openFileSvidSource } = await import("./file_source.ts");
    const bundles = readBundleConfig();
    return adopted(
      await openFileSvidSource(
        dir,
        options.watch === undefined ? { bundles } : {
          watch: options.watch,
          bundles,
        },
      ),
    );
  }
  const { openWorkloadApiSource } = await import("./workload_api.ts");
  return adopted(await openWorkloadApiSource());
}

/** Lets roles without configured trust roots trust the SVID's own domain. */
function adopted(source: SvidSource): SvidSource {
  adoptOwnTrustDomain(source.current().id, createLogger("spiffe"));
  return source;
}
