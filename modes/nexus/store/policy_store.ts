// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Persistence of policies: every field but the name is sealed (see
 * `field_cipher.ts`). Validation, compilation and caching belong to the
 * policy engine, which calls this store.
 *
 * @module
 */
import type { PolicyRow, StoreBackend } from "./backend.ts";
import { FieldCipher, type FieldLocation } from "./field_cipher.ts";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";

/** What a caller writes: a policy without its times. */
export interface PolicyInput {
  /** The policy name, its identity. */
  readonly name: string;
  /** Regular expression over the caller's SPIFFE ID. */
  readonly spiffeIdPattern: string;
  /** Regular expression over the secret path. */
  readonly pathPattern: string;
  /** Granted permissions (`read`, `write`, `list`, `execute`, `super`). */
  readonly permissions: readonly string[];
}

/** A stored policy. */
export interface PolicyRecord extends PolicyInput {
  /** RFC 3339 time of the first write under this name. */
  readonly createdAt: string;
  /** RFC 3339 time of the last write. */
  readonly updatedAt: string;
}

/** Options of {@linkcode PolicyStore.listPolicies}. */
export interface ListPoliciesOptions {
  /**
   * Called for each policy that does not decrypt, which is then left out.
   * Without it, such a policy fails the whole listing.
   */
  readonly onUndecryptable?: (name: string, error: ApiError) => void;
}

const FIELDS = [
  "spiffeIdPattern",
  "pathPattern",
  "permissions",
  "createdAt",
  "updatedAt",
] as const;

function at(name: string, field: string): FieldLocation {
  return { table: "policies", key: name, field };
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((p) => typeof p === "string");
}

/** Encrypted policy records over a {@linkcode StoreBackend}. */
export class PolicyStore {
  #backend: StoreBackend;
  #cipher: FieldCipher;

  /**
   * Creates the store.
   *
   * @param backend the raw store
   * @param storageKey the storage purpose key
   */
  constructor(backend: StoreBackend, storageKey: CryptoKey) {
    this.#backend = backend;
    this.#cipher = new FieldCipher(storageKey);
  }

  /**
   * Inserts or replaces a policy by name; a replaced policy keeps its
   * `createdAt`.
   *
   * @param input the policy (already validated by the caller)
   * @returns the stored record
   * @throws {ApiError} `api_bad_request` for an empty name,
   * `store_write_failed` when the store cannot persist
   */
  async putPolicy(input: PolicyInput): Promise<PolicyRecord> {
    if (typeof input.name !== "string" || input.name.length === 0) {
      throw new ApiError(ErrorCode.BadRequest, "Policy name must not be empty");
    }
    const now = new Date().toISOString();
    const seal = (value: unknown, field: string) =>
      this.#cipher.seal(value, at(input.name, field));
    const [spiffeIdPattern, pathPattern, permissions, createdAt, updatedAt] =
      await Promise.all([
        seal(input.spiffeIdPattern, "spiffeIdPattern"),
        seal(input.pathPattern, "pathPattern"),
        seal([...input.permissions], "permissions"),
        seal(now, "createdAt"),
        seal(now, "updatedAt"),
      ]);
    const stored = await this.#backend.upsertPolicy({
      name: input.name,
      spiffeIdPattern,
      pathPattern,
      permissions,
      createdAt,
      updatedAt,
    });
    return this.#open(stored);
  }

  /**
   * Reads a policy.
   *
   * @param name the policy name
   * @returns the record, or undefined when there is none
   * @throws {ApiError} `api_internal_error` when it does not decrypt
   */
  async getPolicy(name: string): Promise<PolicyRecord | undefined> {
    const row = await this.#backend.readPolicy(name);
    return row && this.#open(row);
  }

  /**
   * Deletes a policy.
   *
   * @param name the policy name
   * @returns false when there was no such policy
   * @throws {ApiError} `store_write_failed` when the store cannot persist
   */
  deletePolicy(name: string): Promise<boolean> {
    return this.#backend.deletePolicy(name);
  }

  /**
   * Reads every policy, by name ascending.
   *
   * @param options what to do with a policy that does not decrypt
   * @returns the records
   * @throws {ApiError} `api_internal_error` when a policy does not decrypt
   * and no `onUndecryptable` is given
   */
  async listPolicies(
    options: ListPoliciesOptions = {},
  ): Promise<PolicyRecord[]> {
    const rows = await this.#backend.listPolicies();
    const records = await Promise.all(rows.map(async (row) => {
      try {
        return await this.#open(row);
      } catch (e) {
        if (!options.onUndecryptable || !(e instanceof ApiError)) throw e;
        options.onUndecryptable(row.name, e);
        return undefined;
      }
    }));
    return records.filter((r) => r !== undefined);
  }

  async #open(row: PolicyRow): Promise<PolicyRecord> {
    const [spiffeIdPattern, pathPattern, permissions, createdAt, updatedAt] =
      await Promise.all(
        FIELDS.map((field) =>
          this.#cipher.open(row[field], at(row.name, field))
        ),
      );
    if (
      typeof spiffeIdPattern !== "string" || typeof pathPattern !== "string" ||
      !isStringArray(permissions) || typeof createdAt !== "string" ||
      typeof updatedAt !== "string"
    ) {
      throw new ApiError(
        ErrorCode.Internal,
        `Stored policy "${row.name}" has fields of the wrong type`,
      );
    }
    return {
      name: row.name,
      spiffeIdPattern,
      pathPattern,
      permissions,
      createdAt,
      updatedAt,
    };
  }
}
