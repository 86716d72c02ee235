// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The shape every X.509-SVID source shares (Workload API, SVID directory),
 * so the mTLS layer does not care where identity comes from.
 *
 * @module
 */
import type { SpiffeId } from "./id.ts";

/** Longest wait for a first SVID when `SPIKE_SPIFFE_SOURCE_TIMEOUT` is unset. */
export const DEFAULT_SOURCE_TIMEOUT_MS = 30_000;

/** This process's own X.509-SVID and the trust bundles it verifies peers with. */
export interface X509Material {
  /** The SPIFFE ID in the leaf certificate. */
  readonly id: SpiffeId;
  /** DER certificates, leaf first, then intermediates. */
  readonly chain: readonly Uint8Array[];
  /** The private key as PEM (PKCS#8) bytes; bytes so it never becomes a JS string. */
  readonly keyPem: Uint8Array;
  /** Trust domain name -> DER CA certificates of that trust domain. */
  readonly bundles: ReadonlyMap<string, readonly Uint8Array[]>;
}

/** A live source of X.509 material that may rotate while the process runs. */
export interface SvidSource extends Disposable {
  /** The current material; always set once the source is open. */
  current(): X509Material;
  /**
   * Calls `listener` after every rotation with the new material.
   *
   * @returns a function that removes the listener
   */
  onUpdate(listener: (material: X509Material) => void): () => void;
  /** Stops watching / streaming and zeroes the held key. */
  close(): void;
}
