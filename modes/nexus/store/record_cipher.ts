// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Sealed records of store format 2: one AES-256-GCM seal per secret head,
 * secret version, policy and policy set, under a data key of the keyring.
 *
 * Layout: `0x02 ‖ term (4 bytes, big-endian) ‖ nonce (12) ‖ ciphertext ‖
 * tag (16)`. The term names the data key. Associated data: the UTF-8 of the
 * JSON array `["spike/v2", term, table, key, n]`, where `key` is the secret
 * path or policy name (empty for the policy set) and `n` the number the row
 * is checked by: the head's revision, the version number, or the policy
 * generation. A record copied to another row, renumbered, or put back
 * under another revision or generation does not open.
 *
 * @module
 */
import { NONCE_BYTES, TAG_BYTES } from "../../../lib/crypto/aead.ts";
import { recordTerm } from "./backend.ts";
import { zero } from "../../../lib/crypto/zero.ts";
import { IntegrityError } from "./integrity.ts";

/** The key a record is sealed with, and its term. */
export interface SealKey {
  /** The term the record names. */
  readonly term: number;
  /** The data key of that term. */
  readonly key: CryptoKey;
}

/**
 * Where records get their data keys: the key to seal with (one encryption
 * counted against its budget) and the key of a term to open with. Either
 * may wait, for a reservation or a keyring reload.
 */
export interface DataKeys {
  /** The active term's key, counted as one encryption. */
  sealKey(): SealKey | Promise<SealKey>;
  /** The key of `term`, or undefined when no keyring holds it. */
  openKey(term: number): CryptoKey | undefined | Promise<CryptoKey | undefined>;
}

/** The first byte of every format-2 record. */
export const RECORD_FORMAT = 2;
const HEADER_BYTES = 5;

/** The tables that hold sealed records. */
export type RecordTable =
  | "secrets"
  | "secret_versions"
  | "policies"
  | "policy_set";

/** Where a record lives and the number it is bound to. */
export interface RecordLocation {
  /** The table. */
  readonly table: RecordTable;
  /** Secret path or policy name; empty for the policy set. */
  readonly key: string;
  /** Head revision, version number or policy generation. */
  readonly n: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function aad(term: number, at: RecordLocation): Uint8Array<ArrayBuffer> {
  return encoder.encode(
    JSON.stringify(["spike/v2", term, at.table, at.key, at.n]),
  );
}

/**
 * Words a location for the operator's log: the path or name and its number,
 * never a value.
 *
 * @param at the location
 * @returns e.g. `secret "db/creds" version 3`
 */
export function describe(at: RecordLocation): string {
  switch (at.table) {
    case "secrets":
      return `secret "${at.key}" head (revision ${at.n})`;
    case "secret_versions":
      return `secret "${at.key}" version ${at.n}`;
    case "policies":
      return `policy "${at.key}" (generation ${at.n})`;
    case "policy_set":
      return `policy set (generation ${at.n})`;
  }
}

/** Seals and opens JSON records with the keyring's data keys. */
export class RecordCipher {
  readonly #keys: DataKeys;

  /**
   * Creates the cipher.
   *
   * @param keys where the data keys come from
   */
  constructor(keys: DataKeys) {
    this.#keys = keys;
  }

  /**
   * Seals the JSON of `value` for `at` with the active term.
   *
   * @param value any JSON value
   * @param at where the record will be stored
   * @returns the record bytes
   */
  async seal(
    value: unknown,
    at: RecordLocation,
  ): Promise<Uint8Array<ArrayBuffer>> {
    const { term, key } = await this.#keys.sealKey();
    const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
    const plaintext = encoder.encode(JSON.stringify(value));
    try {
      const sealed = await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: nonce, additionalData: aad(term, at) },
        key,
        plaintext,
      );
      const out = new Uint8Array(
        HEADER_BYTES + NONCE_BYTES + sealed.byteLength,
      );
      out[0] = RECORD_FORMAT;
      new DataView(out.buffer).setUint32(1, term);
      out.set(nonce, HEADER_BYTES);
      out.set(new Uint8Array(sealed), HEADER_BYTES + NONCE_BYTES);
      return out;
    } finally {
      zero(plaintext);
    }
  }

  /**
   * Opens a record read from `at`.
   *
   * @param record the stored bytes
   * @param at where they were read, with the number they must be bound to
   * @returns the JSON value
   * @throws {IntegrityError} when the record is malformed, names a term the
   *   keyring does not hold, or does not authenticate for `at`
   */
  async open(
    record: Uint8Array<ArrayBuffer>,
    at: RecordLocation,
  ): Promise<unknown> {
    if (
      record.length < HEADER_BYTES + NONCE_BYTES + TAG_BYTES ||
      record[0] !== RECORD_FORMAT
    ) {
      throw new IntegrityError(`Stored ${describe(at)} is malformed`);
    }
    const term = recordTerm(record);
    const key = await this.#keys.openKey(term);
    if (!key) {
      throw new IntegrityError(
        `Stored ${
          describe(at)
        } names key term ${term}, which the keyring does not hold`,
      );
    }
    let plaintext: Uint8Array<ArrayBuffer> | undefined;
    try {
      plaintext = new Uint8Array(
        await crypto.subtle.decrypt(
          {
            name: "AES-GCM",
            iv: record.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES),
            additionalData: aad(term, at),
          },
          key,
          record.subarray(HEADER_BYTES + NONCE_BYTES),
        ),
      );
      return JSON.parse(decoder.decode(plaintext));
    } catch {
      throw new IntegrityError(
        `Stored ${
          describe(at)
        } does not open: it was altered, moved or rolled back`,
      );
    } finally {
      zero(plaintext);
    }
  }

  /**
   * Seals a record's content again, for the same location, with the
   * active term (re-encryption of an older term).
   *
   * @param record the stored bytes
   * @param at where they are stored
   * @returns the new record
   * @throws {IntegrityError} as {@linkcode RecordCipher.open}
   */
  async reseal(
    record: Uint8Array<ArrayBuffer>,
    at: RecordLocation,
  ): Promise<Uint8Array<ArrayBuffer>> {
    return await this.seal(await this.open(record, at), at);
  }
}
