// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The full check of a store's rows: every secret head opened and checked
 * against its version rows, every version record opened, every policy
 * record opened and checked against the policy set. It reports counts and
 * where each problem is (path or policy name and the rule), never a value.
 * The digest half of the check is the store's (`open.ts`).
 *
 * @module
 */
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import type { SecretService } from "../secrets/secret_service.ts";
import { IntegrityError } from "./integrity.ts";
import type { PolicyStore } from "./policy_store.ts";

/** One problem: where, and which rule failed. */
export interface CheckProblem {
  /** What failed: a secret path, a policy, or the store as a whole. */
  readonly kind: "secret" | "policy" | "store";
  /** The path or policy name, for a secret or policy. */
  readonly name?: string;
  /** The rule that failed, in one sentence. */
  readonly message: string;
}

/** What a check of the rows found. */
export interface RowCheck {
  /** Secret paths checked. */
  secrets: number;
  /** Version records opened (below each head's highest version). */
  versions: number;
  /** Policy records opened. */
  policies: number;
  /** Every problem found. */
  problems: CheckProblem[];
}

/** Paths listed per page, and checked at once within a page. */
const PAGE = 512;
const PARALLEL = 16;

/**
 * Checks every row of the store.
 *
 * @param secrets the secret service
 * @param policies the policy store
 * @param listPaths one keyset page of stored paths
 * @param onProgress told after each page: paths done so far
 * @returns counts and problems
 */
export async function checkRows(
  secrets: SecretService,
  policies: PolicyStore,
  listPaths: (after: string, limit: number) => Promise<string[]>,
  onProgress?: (done: number) => void,
): Promise<RowCheck> {
  const result: RowCheck = {
    secrets: 0,
    versions: 0,
    policies: 0,
    problems: [],
  };
  let after = "";
  for (;;) {
    const page = await listPaths(after, PAGE);
    for (let i = 0; i < page.length; i += PARALLEL) {
      await Promise.all(
        page.slice(i, i + PARALLEL).map(async (path) => {
          try {
            const versions = await secrets.verify(path);
            if (versions === undefined) return;
            result.secrets += 1;
            result.versions += versions;
          } catch (e) {
            // Written all the time while checked: its own reads check it.
            if (e instanceof ApiError && e.code === ErrorCode.Conflict) return;
            if (!(e instanceof IntegrityError)) throw e;
            result.secrets += 1;
            result.problems.push({
              kind: "secret",
              name: path,
              message: e.message,
            });
          }
        }),
      );
    }
    onProgress?.(result.secrets);
    if (page.length < PAGE) break;
    after = page[page.length - 1]!;
  }
  try {
    const loaded = await policies.loadPolicies((name, e) => {
      result.policies += 1;
      result.problems.push({ kind: "policy", name, message: e.message });
    });
    result.policies += loaded.length;
  } catch (e) {
    if (!(e instanceof IntegrityError)) throw e;
    result.problems.push({ kind: "store", message: e.message });
  }
  return result;
}
