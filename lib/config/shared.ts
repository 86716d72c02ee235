// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The start check of the variables every mode reads: log level, trust
 * roots and where the SVID comes from. Several of them are read lazily
 * (per log line, per authorization, when the source opens), so without
 * this check an invalid value would surface late, or as a silent default.
 *
 * @module
 */
import { checkLogLevel } from "../log.ts";
import {
  EndpointAddressError,
  parseEndpointAddress,
} from "../spiffe/endpoint_address.ts";
import { checkBundleConfig } from "../spiffe/bundle_config.ts";
import { checkTrustRootConfig } from "../spiffe/roles.ts";
import { ConfigError, envPositiveDuration, envString } from "./env.ts";

/**
 * Checks `SPIKE_SYSTEM_LOG_LEVEL`, every `SPIKE_TRUST_ROOT*` variable,
 * `SPIFFE_ENDPOINT_SOCKET` (when `SPIKE_SVID_DIR` is unset),
 * `SPIKE_SPIFFE_SOURCE_TIMEOUT` (above zero: zero would give up before
 * the first SVID could arrive), and the bundle settings of SVID files
 * (`SPIKE_FEDERATED_BUNDLES`, `SPIKE_SVID_BUNDLE_TRUST_CAS_WITHOUT_ID`).
 *
 * @throws {ConfigError} naming the first invalid variable
 */
export function checkSharedConfig(): void {
  checkLogLevel();
  checkTrustRootConfig();
  envPositiveDuration("SPIKE_SPIFFE_SOURCE_TIMEOUT", 30_000);
  const svidDir = envString("SPIKE_SVID_DIR", "") !== "";
  checkBundleConfig(svidDir);
  if (svidDir) return;
  const socket = envString("SPIFFE_ENDPOINT_SOCKET", "");
  // Unset is reported when the source opens, with how to set it.
  if (socket === "") return;
  try {
    parseEndpointAddress(socket, "SPIFFE_ENDPOINT_SOCKET");
  } catch (e) {
    if (e instanceof EndpointAddressError) throw new ConfigError(e.message);
    throw e;
  }
}
