// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Picks the SVID source from configuration: an SVID directory when
 * `SPIKE_SVID_DIR` is set, else the SPIFFE Workload API at
 * `SPIFFE_ENDPOINT_SOCKET`. Each source is imported only when chosen, so a
 * process on SVID files never loads gRPC (a visible share of start time).
 *
 * @module
 */
import { formatDuration } from "../config/duration.ts";
import { envDuration, envString } from "../config/env.ts";
import { createLogger } from "../log.ts";
import { withWaitNote } from "../wait_note.ts";
import { readBundleConfig } from "./bundle_config.ts";
import { adoptOwnTrustDomain } from "./roles.ts";
import { DEFAULT_SOURCE_TIMEOUT_MS, type SvidSource } from "./source.ts";

/**
 * Opens the configured SVID source and waits for its first SVID, with a
 * note on a terminal when that takes a while. Roles whose trust roots no
 * `SPIKE_TRUST_ROOT*` variable sets are then trusted in that SVID's trust
 * domain (see `adoptOwnTrustDomain`).
 *
 * @param options `watch: false` for a short-lived process that needs no
 *   file watcher (SVID directory only; polling still applies);
 *   `missingSocket: "fail"` to fail at once when the Workload API socket
 *   does not exist (a CLI), rather than wait for an agent that may still be
 *   starting (a service)
 * @returns the live source
 * @throws {ConfigError} when a bundle setting or federated bundle file is
 *   invalid
 * @throws when the source cannot provide an SVID (see the chosen source)
 */
export async function openSvidSource(
  options: { watch?: boolean; missingSocket?: "fail" | "wait" } = {},
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
  const timeoutMs = envDuration(
    "SPIKE_SPIFFE_SOURCE_TIMEOUT",
    DEFAULT_SOURCE_TIMEOUT_MS,
  );
  return adopted(
    await withWaitNote(
      openWorkloadApiSource({
        timeoutMs,
        missingSocket: options.missingSocket ?? "wait",
      }),
      `Waiting for an X.509-SVID from the SPIFFE Workload API at ${
        envString("SPIFFE_ENDPOINT_SOCKET", "")
      } (up to ${formatDuration(timeoutMs)}, SPIKE_SPIFFE_SOURCE_TIMEOUT)`,
    ),
  );
}

/** Lets roles without configured trust roots trust the SVID's own domain. */
function adopted(source: SvidSource): SvidSource {
  adoptOwnTrustDomain(source.current().id, createLogger("spiffe"));
  return source;
}
