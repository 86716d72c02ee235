// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The raw storage interface under nexus: rows of opaque ciphertext keyed by
 * plaintext lookup fields. A backend never sees a key or a plaintext value;
 * sealing and opening happen above it (`field_cipher.ts`).
 *
 * Every method is async and every read-modify-write is one backend
 * transaction guarded by a per-path revision number, so a networked
 * database shared by several nexus replicas (PostgreSQL) can implement this
 * interface without changes to the layers above.
 *
 * What stays in plaintext, and why:
 * - secret paths and policy names: the lookup keys (listing needs no key);
 * - version numbers and a per-version `deleted` flag: the current version is
 *   the highest version not deleted, and pruning drops the lowest numbers,
 *   so both are decided inside one transaction without decrypting anything;
 *   the encrypted `deletedTime` of each version must agree with the flag,
 *   which the secret service checks on every read of that version;
 * - a per-path revision counter: the compare-and-set token;
 * - the store meta (schema version, store id, key-check value, threshold,
 *   share count, shard commitments): read before the root key exists.
 *
 * Everything else (values, all times, max versions, policy patterns and
 * permissions) is AES-256-GCM ciphertext bound to its table, key, version and
 * field.
 *
 * @module
 */

/** The schema version this build writes and reads. */
export const SCHEMA_VERSION = 1;

/** Length of the random store id in bytes. */
export const STORE_ID_BYTES = 16;

/** Raised when a store cannot be opened or initialized (never carries data). */
export class StoreError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreError";
  }
}

/** Store-wide facts written once at initialization; readable without a key. */
export interface StoreMeta {
  /** Random id, the HKDF salt of the purpose keys and the commitment key. */
  readonly storeId: Uint8Array<ArrayBuffer>;
  /** MAC proving which root key belongs to this store. */
  readonly keyCheck: Uint8Array<ArrayBuffer>;
  /** Shares needed to rebuild the root key. */
  readonly threshold: number;
  /** Number of shares (0 for a store that has no keepers). */
  readonly shareCount: number;
  /** Opaque commitment per share; element `i - 1` belongs to share `i`. */
  readonly commitments: readonly Uint8Array<ArrayBuffer>[];
}

/** The encrypted per-path fields of a secret, plus its revision. */
export interface SecretHeadRow {
  /** Incremented by every write to the path; the compare-and-set token. */
  readonly revision: number;
  /** Sealed RFC 3339 time the path was first written. */
  readonly createdTime: Uint8Array<ArrayBuffer>;
  /** Sealed RFC 3339 time of the last change of the current version. */
  readonly updatedTime: Uint8Array<ArrayBuffer>;
  /** Sealed max-versions setting applied at the last write. */
  readonly maxVersions: Uint8Array<ArrayBuffer>;
}

/** One stored version of a secret, without its value map. */
export interface SecretVersionMetaRow {
  /** Version number, from 1. */
  readonly version: number;
  /** Plaintext soft-delete flag (see the module comment). */
  readonly deleted: boolean;
  /** Sealed RFC 3339 creation time. */
  readonly createdTime: Uint8Array<ArrayBuffer>;
  /** Sealed RFC 3339 deletion time or JSON null. */
  readonly deletedTime: Uint8Array<ArrayBuffer>;
}

/** One stored version of a secret with its sealed value map. */
export interface SecretVersionRow extends SecretVersionMetaRow {
  /** Sealed JSON object of string values. */
  readonly data: Uint8Array<ArrayBuffer>;
}

/** A secret path as stored: head and every version (ascending), no values. */
export interface SecretState {
  /** The per-path fields. */
  readonly head: SecretHeadRow;
  /** All stored versions, lowest number first. */
  readonly versions: readonly SecretVersionMetaRow[];
}

/** A change of a version's deletion state. */
export interface DeletionChange {
  /** The version to change; it must exist. */
  readonly version: number;
  /** The new flag. */
  readonly deleted: boolean;
  /** The new sealed deletion time (JSON null when undeleted). */
  readonly deletedTime: Uint8Array<ArrayBuffer>;
}

/** Everything one secret write does, applied atomically. */
export interface SecretWrite {
  /** The new head fields (the revision is assigned by the backend). */
  readonly head: Omit<SecretHeadRow, "revision">;
  /** A new version to insert. */
  readonly insert?: SecretVersionRow;
  /** Deletion-state changes of existing versions. */
  readonly deletions?: readonly DeletionChange[];
  /** Afterwards keep at most this many versions, dropping the lowest numbers. */
  readonly keepVersions?: number;
}

/** The outcome of a compare-and-set write. */
export type WriteResult =
  | { readonly ok: true; readonly revision: number }
  | { readonly ok: false; readonly conflict: true };

/** A stored policy: plaintext name and sealed fields. */
export interface PolicyRow {
  /** The policy name, primary key. */
  readonly name: string;
  /** Sealed SPIFFE-ID pattern. */
  readonly spiffeIdPattern: Uint8Array<ArrayBuffer>;
  /** Sealed path pattern. */
  readonly pathPattern: Uint8Array<ArrayBuffer>;
  /** Sealed JSON array of permissions. */
  readonly permissions: Uint8Array<ArrayBuffer>;
  /** Sealed RFC 3339 creation time. */
  readonly createdAt: Uint8Array<ArrayBuffer>;
  /** Sealed RFC 3339 update time. */
  readonly updatedAt: Uint8Array<ArrayBuffer>;
}

/**
 * Raw persistence for nexus. Write failures (disk full, read-only medium)
 * reject with `ApiError` code `store_write_failed` and leave the stored data
 * as it was; reads keep working.
 */
export interface StoreBackend {
  /** `sqlite` or `memory`. */
  readonly kind: string;
  /** Where the data lives (file path), or undefined for memory. */
  readonly location: string | undefined;

  /** The store meta, or undefined before {@linkcode initMeta}. */
  readMeta(): Promise<StoreMeta | undefined>;
  /**
   * Writes the store meta once.
   *
   * @throws {StoreError} when meta is already present
   */
  initMeta(meta: StoreMeta): Promise<void>;

  /** A path's head and versions (no values), or undefined if unknown. */
  readSecret(path: string): Promise<SecretState | undefined>;
  /**
   * One version with its value map. Version 0 selects the highest version
   * not deleted.
   *
   * @returns the row, or undefined when the path or version is unknown
   * (or, for 0, when every version is deleted)
   */
  readSecretVersion(
    path: string,
    version: number,
  ): Promise<SecretVersionRow | undefined>;
  /**
   * Applies `change` if the path's revision still equals `expectedRevision`
   * (0: the path must not exist). Version inserts, deletion changes, pruning
   * and the new head are one transaction.
   */
  writeSecret(
    path: string,
    expectedRevision: number,
    change: SecretWrite,
  ): Promise<WriteResult>;
  /** Every stored path, by code point ascending (UTF-8 byte order). */
  listSecretPaths(): Promise<string[]>;

  /**
   * Inserts or replaces a policy. On replace the stored `createdAt` is kept.
   *
   * @returns the row as stored
   */
  upsertPolicy(row: PolicyRow): Promise<PolicyRow>;
  /** A policy, or undefined. */
  readPolicy(name: string): Promise<PolicyRow | undefined>;
  /** Deletes a policy; false when it did not exist. */
  deletePolicy(name: string): Promise<boolean>;
  /** Every policy, by name ascending. */
  listPolicies(): Promise<PolicyRow[]>;

  /** Finishes queued writes and releases the backend. */
  close(): Promise<void>;
}

/**
 * Checks the shape of store meta before it is written.
 *
 * @param meta the candidate meta
 * @throws {StoreError} naming the first invalid field
 */
export function assertStoreMeta(meta: StoreMeta): void {
  if (meta.storeId.length !== STORE_ID_BYTES) {
    throw new StoreError(`Store id must be ${STORE_ID_BYTES} bytes`);
  }
  if (meta.keyCheck.length === 0) {
    throw new StoreError("Key-check value must not be empty");
  }
  const count = (n: number) => Number.isInteger(n) && n >= 0 && n <= 255;
  if (!count(meta.shareCount) || !count(meta.threshold)) {
    throw new StoreError("Threshold and share count must be 0 to 255");
  }
  if (meta.threshold > meta.shareCount) {
    throw new StoreError("Threshold cannot exceed the share count");
  }
  if (meta.commitments.length !== meta.shareCount) {
    throw new StoreError("There must be one commitment per share");
  }
}

/**
 * Compares strings by code point, which is SQLite's default (UTF-8 byte)
 * order, so every backend lists in the same order.
 *
 * @param a first string
 * @param b second string
 * @returns negative, zero or positive
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}

// Surrogates (code points above U+FFFF) sort after U+E000..U+FFFF.
function rank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}
