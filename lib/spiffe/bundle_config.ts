// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Which trust bundles an SVID directory (`SPIKE_SVID_DIR`) may contribute.
 * `svid_bundle.pem` cannot say reliably which trust domain a CA belongs to
 * (a CA without a SPIFFE ID names none, and tools such as spiffe-helper
 * append federated CAs to it), so foreign trust domains come only from
 * files the operator names, one per trust domain:
 *
 * - `SPIKE_FEDERATED_BUNDLES=partner.example=/etc/spike/partner.pem,...`
 * - `SPIKE_SVID_BUNDLE_TRUST_CAS_WITHOUT_ID=true` makes every CA of
 *   `svid_bundle.pem` without a SPIFFE ID an anchor of the local trust
 *   domain, for PKIs whose roots carry none (off by default).
 *
 * @module
 */
import { ConfigError, envBool, envString } from "../config/env.ts";
import { SpiffeIdError, validateTrustDomain } from "./id.ts";

/** The variable naming one bundle file per federated trust domain. */
export const FEDERATED_BUNDLES_VARIABLE = "SPIKE_FEDERATED_BUNDLES";
/** The opt-in for CAs without a SPIFFE ID in `svid_bundle.pem`. */
export const TRUST_CAS_WITHOUT_ID_VARIABLE =
  "SPIKE_SVID_BUNDLE_TRUST_CAS_WITHOUT_ID";

/** How an SVID directory's bundles are put together. */
export interface BundleConfig {
  /** Federated trust domain -> the PEM file holding its CAs. */
  readonly federated: ReadonlyMap<string, string>;
  /** Whether CAs without a SPIFFE ID are local anchors in any case. */
  readonly trustCasWithoutId: boolean;
}

/**
 * Parses `SPIKE_FEDERATED_BUNDLES`: comma-separated `<trust domain>=<path>`.
 *
 * @param raw the value
 * @returns trust domain -> path, in the given order
 * @throws {ConfigError} naming the variable and the broken entry
 */
export function parseFederatedBundles(raw: string): Map<string, string> {
  const bundles = new Map<string, string>();
  const example =
    "give <trust domain>=<PEM file> pairs, e.g. partner.example=/etc/spike/partner.example.pem";
  for (const part of raw.split(",")) {
    const entry = part.trim();
    if (entry === "") {
      throw new ConfigError(
        `${FEDERATED_BUNDLES_VARIABLE} has an empty entry: ${example}`,
      );
    }
    const eq = entry.indexOf("=");
    const td = eq < 0 ? "" : entry.slice(0, eq).trim();
    const path = eq < 0 ? "" : entry.slice(eq + 1).trim();
    if (td === "" || path === "") {
      throw new ConfigError(
        `${FEDERATED_BUNDLES_VARIABLE} entry "${entry}" is not <trust domain>=<PEM file>: ${example}`,
      );
    }
    try {
      validateTrustDomain(td);
    } catch (e) {
      if (!(e instanceof SpiffeIdError)) throw e;
      throw new ConfigError(
        `${FEDERATED_BUNDLES_VARIABLE} names an invalid trust domain "${td}": ${e.message}`,
      );
    }
    if (bundles.has(td)) {
      throw new ConfigError(
        `${FEDERATED_BUNDLES_VARIABLE} names trust domain "${td}" twice: give one PEM file per trust domain`,
      );
    }
    bundles.set(td, path);
  }
  return bundles;
}

/**
 * Reads the bundle settings of an SVID directory from the environment.
 *
 * @returns the settings (no federation and no opt-in when unset)
 * @throws {ConfigError} naming the invalid variable
 */
export function readBundleConfig(): BundleConfig {
  const raw = envString(FEDERATED_BUNDLES_VARIABLE, "");
  return {
    federated: raw === "" ? new Map() : parseFederatedBundles(raw),
    trustCasWithoutId: envBool(TRUST_CAS_WITHOUT_ID_VARIABLE, false),
  };
}

/**
 * Checks the bundle settings; with the Workload API (no `SPIKE_SVID_DIR`)
 * they would do nothing, since the agent names every bundle's trust domain
 * itself, so setting them there is an error rather than silently ignored.
 *
 * @param svidDir whether an SVID directory is the source
 * @throws {ConfigError} naming the variable
 */
export function checkBundleConfig(svidDir: boolean): void {
  const config = readBundleConfig();
  if (svidDir) return;
  for (
    const [name, set] of [
      [FEDERATED_BUNDLES_VARIABLE, config.federated.size > 0],
      [TRUST_CAS_WITHOUT_ID_VARIABLE, config.trustCasWithoutId],
    ] as const
  ) {
    if (set) {
      throw new ConfigError(
        `${name} applies to SVID files (SPIKE_SVID_DIR) only: the SPIFFE Workload API names each bundle's trust domain itself`,
      );
    }
  }
}
