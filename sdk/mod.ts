// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The SPIKE workload SDK: applications read and write secrets and use the
 * cipher with their SPIFFE identity, from Deno and from Node.js 20+,
 * without writing any mTLS or SPIFFE code.
 *
 * - Identity: the X.509-SVID from the SPIFFE Workload API
 *   (`SPIFFE_ENDPOINT_SOCKET`) or an SVID directory (`SPIKE_SVID_DIR`),
 *   verified to the X509-SVID standard; rotations are picked up live.
 * - Nexus is accepted only when its SVID verifies and its SPIFFE ID is a
 *   nexus ID (`spiffe://<td>/spike/nexus…`, trust domains from
 *   `SPIKE_TRUST_ROOT_NEXUS`).
 * - Calls retry with backoff until a deadline while nexus is locked or
 *   unreachable, fail over between several nexus URLs, and never retry a
 *   denial or an invalid request.
 * - Values are bytes; strings only where the caller asks.
 *
 * @example Reading a database password (needs a running nexus)
 * ```ts
 * import { Spike } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using spike = await Spike.connect();
 * using secret = await spike.get("docs/db");
 * assert.equal(secret.text("password"), "correct horse battery staple");
 * ```
 *
 * @module
 */
export {
  type ByteInput,
  type CallOptions,
  type ConnectOptions,
  type GetOptions,
  type GetValueOptions,
  type ListOptions,
  type PutOptions,
  type RetryOptions,
  type SecretMetadata,
  type SecretVersionInfo,
  type SourceOption,
  Spike,
  type StreamOptions,
  type VersionsOptions,
  type WatchOptions,
} from "./client.ts";
export {
  SpikeBadRequestError,
  SpikeConfigError,
  SpikeConflictError,
  SpikeDeniedError,
  SpikeError,
  SpikeLockedError,
  SpikeNotFoundError,
  SpikeServerError,
  SpikeTransportError,
} from "./errors.ts";
export { Secret, zero } from "./secret.ts";
export type { SvidSource, X509Material } from "../lib/spiffe/source.ts";
export type { SpiffeId } from "../lib/spiffe/id.ts";
