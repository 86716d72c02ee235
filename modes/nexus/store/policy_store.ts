// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Persistence of policies in store format 2: one sealed record per policy,
 * and the sealed policy set, which names every policy with the generation
 * it was last written at. Every policy write replaces the set under a
 * compare-and-set on its generation, and seals the policy's record bound to
 * its name and that generation. So a policy row that the set does not name
 * (a deleted policy's row put back), a row the set names but that is
 * missing, or an older record of a policy put back in place, fails the
 * check and grants nothing. Validation, compilation and caching belong to
 * the policy engine, which calls this store.
 *
 * @module
 */
import {
  compareCodePoints,
  type PolicySetRow,
  type Sealed,
  type StoreBackend,
} from "./backend.ts";
import { IntegrityError } from "./integrity.ts";
import {
  keysInRange,
  listKeys,
  type ListPage,
  type ListResult,
} from "./key_listing.ts";
import type { RecordCipher } from "./record_cipher.ts";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import { KeyedMutex } from "../secrets/path_lock.ts";

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

/** Exact-string filters of a policy listing (upstream's). */
export interface PolicyFilter {
  /** Only policies whose SPIFFE-ID pattern is exactly this. */
  readonly spiffeIdPattern?: string;
  /** Only policies whose path pattern is exactly this. */
  readonly pathPattern?: string;
}

/** The opened policy set: name -> generation of its last write. */
interface PolicySet {
  readonly generation: number;
  readonly policies: ReadonlyMap<string, number>;
}

/** Attempts of one write when another nexus keeps changing the set. */
const MAX_ATTEMPTS = 16;

function sortedEntries(
  policies: ReadonlyMap<string, number>,
): [string, number][] {
  return [...policies].sort(([a], [b]) => compareCodePoints(a, b));
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((p) => typeof p === "string");
}

function notInSet(name: string): IntegrityError {
  return new IntegrityError(
    `Policy "${name}" has a row that the sealed policy set does not name: a deleted policy's row was put back, or a row was added`,
  );
}

function rowMissing(name: string): IntegrityError {
  return new IntegrityError(
    `Policy "${name}" is in the sealed policy set but its row is missing`,
  );
}

/** Encrypted policy records over a {@linkcode StoreBackend}. */
export class PolicyStore {
  #backend: StoreBackend;
  #records: RecordCipher;
  // Every write replaces the one policy set: in one process they queue up
  // instead of failing each other's compare-and-set.
  #lock = new KeyedMutex();

  /**
   * Creates the store.
   *
   * @param backend the raw store
   * @param records seals and opens records with the keyring's data keys
   */
  constructor(backend: StoreBackend, records: RecordCipher) {
    this.#backend = backend;
    this.#records = records;
  }

  /**
   * Inserts or replaces a policy by name; a replaced policy keeps its
   * `createdAt`.
   *
   * @param input the policy (already validated by the caller)
   * @returns the stored record
   * @throws {ApiError} `api_bad_request` for an empty name,
   * `store_write_failed` when the store cannot persist,
   * `state_integrity_check` when the stored policy or set fails its check
   */
  putPolicy(input: PolicyInput): Promise<PolicyRecord> {
    if (typeof input.name !== "string" || input.name.length === 0) {
      return Promise.reject(
        new ApiError(ErrorCode.BadRequest, "Policy name must not be empty"),
      );
    }
    const { name } = input;
    return this.#write(name, async (set, stored) => {
      const written = set.policies.get(name);
      const now = new Date().toISOString();
      const before = written === undefined
        ? undefined
        : await this.#open(name, written, stored);
      const record: PolicyRecord = {
        name,
        spiffeIdPattern: input.spiffeIdPattern,
        pathPattern: input.pathPattern,
        permissions: [...input.permissions],
        createdAt: before?.createdAt ?? now,
        updatedAt: now,
      };
      return { change: record, result: record };
    });
  }

  /**
   * Reads a policy.
   *
   * @param name the policy name
   * @returns the record, or undefined when there is none
   * @throws {ApiError} `state_integrity_check` when it fails its check
   */
  async getPolicy(name: string): Promise<PolicyRecord | undefined> {
    const read = await this.#backend.readPolicy(name);
    const set = await this.#openSet(read.set);
    const written = set.policies.get(name);
    if (written === undefined) {
      if (read.record) throw notInSet(name);
      return undefined;
    }
    return await this.#open(name, written, read.record);
  }

  /**
   * Deletes a policy.
   *
   * @param name the policy name
   * @returns false when there was no such policy
   * @throws {ApiError} `store_write_failed` when the store cannot persist
   */
  deletePolicy(name: string): Promise<boolean> {
    return this.#write(name, (set) =>
      Promise.resolve(
        set.policies.has(name)
          ? { change: "delete", result: true }
          : { result: false },
      ));
  }

  /**
   * Reads every policy the policy set names, by name ascending. A row that
   * fails its check (not in the set, missing, or not opening) is left out
   * and reported.
   *
   * @param onProblem told about each policy left out
   * @returns the records that pass
   * @throws {IntegrityError} when the policy set itself fails its check
   */
  async loadPolicies(
    onProblem: (name: string, error: IntegrityError) => void,
  ): Promise<PolicyRecord[]> {
    return (await this.loadPolicySnapshot(onProblem)).records;
  }

  /**
   * As {@linkcode loadPolicies}, with the generation of the policy set the
   * records were read at (0 before the first policy write), so a replica
   * can tell whether what it holds is current.
   *
   * @param onProblem told about each policy left out
   * @returns the generation and the records that pass
   * @throws {IntegrityError} when the policy set itself fails its check
   */
  async loadPolicySnapshot(
    onProblem: (name: string, error: IntegrityError) => void,
  ): Promise<{ generation: number; records: PolicyRecord[] }> {
    const snapshot = await this.#backend.readPolicies();
    const set = await this.#openSet(snapshot.set);
    const rows = new Map(snapshot.rows.map((r) => [r.name, r.record]));
    for (const name of rows.keys()) {
      if (!set.policies.has(name)) onProblem(name, notInSet(name));
    }
    const records = await Promise.all(
      sortedEntries(set.policies).map(
        async ([name, written]) => {
          try {
            return await this.#open(name, written, rows.get(name));
          } catch (e) {
            if (!(e instanceof IntegrityError)) throw e;
            onProblem(name, e);
            return undefined;
          }
        },
      ),
    );
    return {
      generation: set.generation,
      records: records.filter((r) => r !== undefined),
    };
  }

  /**
   * One page of policy names, by keyset, from the sealed policy set. With
   * a filter, the page holds only matching policies (each one's record is
   * opened to compare).
   *
   * @param page prefix, cursor and limit (undefined: every name)
   * @param filter exact-string filters; the SPIFFE-ID one wins when both
   *   are given, as upstream
   * @returns the names and the next cursor
   * @throws {IntegrityError} when the set or a matching candidate fails
   */
  async listNames(
    page: ListPage,
    filter: PolicyFilter = {},
  ): Promise<ListResult> {
    const filtering = filter.spiffeIdPattern !== undefined ||
      filter.pathPattern !== undefined;
    const snapshot = filtering
      ? await this.#backend.readPolicies()
      : { set: await this.#backend.readPolicySet(), rows: [] };
    const set = await this.#openSet(snapshot.set);
    let names = sortedEntries(set.policies).map(([name]) => name);
    if (filtering) {
      const rows = new Map(snapshot.rows.map((r) => [r.name, r.record]));
      const candidates = keysInRange(names, {
        prefix: page.prefix,
        after: page.after,
      });
      const matches = await Promise.all(candidates.map(async (name) => {
        const r = await this.#open(
          name,
          set.policies.get(name)!,
          rows.get(name),
        );
        return filter.spiffeIdPattern !== undefined
          ? r.spiffeIdPattern === filter.spiffeIdPattern
          : r.pathPattern === filter.pathPattern;
      }));
      names = candidates.filter((_, i) => matches[i]);
    }
    return await listKeys(
      (range) => Promise.resolve(keysInRange(names, range)),
      page,
    );
  }

  // Runs one write of policy `name`: `plan` decides, from the current set
  // and the policy's stored record (read in one statement), its new record,
  // its deletion, or nothing to do. The new set and record are sealed for
  // the next generation and written under a compare-and-set, retried when
  // another nexus wrote first.
  #write<T>(
    name: string,
    plan: (set: PolicySet, stored: Sealed | undefined) => Promise<
      { change?: PolicyRecord | "delete"; result: T }
    >,
  ): Promise<T> {
    return this.#lock.run("", async () => {
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        const read = await this.#backend.readPolicy(name);
        const set = await this.#openSet(read.set);
        const { change, result } = await plan(set, read.record);
        if (change === undefined) return result;
        const generation = set.generation + 1;
        const policies = new Map(set.policies);
        if (change === "delete") policies.delete(name);
        else policies.set(name, generation);
        const [sealedSet, record] = await Promise.all([
          this.#records.seal({ policies: sortedEntries(policies) }, {
            table: "policy_set",
            key: "",
            n: generation,
          }),
          change === "delete" ? undefined : this.#records.seal({
            spiffeIdPattern: change.spiffeIdPattern,
            pathPattern: change.pathPattern,
            permissions: change.permissions,
            createdAt: change.createdAt,
            updatedAt: change.updatedAt,
          }, { table: "policies", key: name, n: generation }),
        ]);
        const outcome = await this.#backend.writePolicy(
          set.generation,
          sealedSet,
          { name, ...(record ? { record } : {}) },
        );
        if (outcome.ok) return result;
      }
      throw new ApiError(
        ErrorCode.Conflict,
        "Policies kept changing during the write; try again",
      );
    });
  }

  async #openSet(row: PolicySetRow | undefined): Promise<PolicySet> {
    if (!row) return { generation: 0, policies: new Map() };
    const value = await this.#records.open(row.record, {
      table: "policy_set",
      key: "",
      n: row.generation,
    }) as { policies?: unknown } | null;
    const entries = value?.policies;
    if (
      !Array.isArray(entries) ||
      !entries.every((e) =>
        Array.isArray(e) && e.length === 2 && typeof e[0] === "string" &&
        Number.isSafeInteger(e[1]) && e[1] >= 1 && e[1] <= row.generation
      )
    ) {
      throw new IntegrityError("The sealed policy set is malformed");
    }
    return {
      generation: row.generation,
      policies: new Map(entries as [string, number][]),
    };
  }

  async #open(
    name: string,
    generation: number,
    record: Uint8Array<ArrayBuffer> | undefined,
  ): Promise<PolicyRecord> {
    if (!record) throw rowMissing(name);
    const r = await this.#records.open(record, {
      table: "policies",
      key: name,
      n: generation,
    }) as Partial<PolicyRecord> | null;
    if (
      typeof r?.spiffeIdPattern !== "string" ||
      typeof r.pathPattern !== "string" || !isStringArray(r.permissions) ||
      typeof r.createdAt !== "string" || typeof r.updatedAt !== "string"
    ) {
      throw new IntegrityError(
        `Stored policy "${name}" has fields of the wrong type`,
      );
    }
    return {
      name,
      spiffeIdPattern: r.spiffeIdPattern,
      pathPattern: r.pathPattern,
      permissions: r.permissions,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
    };
  }
}
