// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * What the workload SDK tests share: a real cluster (keepers, nexus on
 * SQLite, audit log in a file) with workload identities and policies made
 * through the real policy API, and a reader of the audit log to count the
 * requests nexus really saw.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Cluster, type ClusterOptions } from "../scripts/cluster.ts";

/** The trust domain of the test clusters. */
export const TD = "spike.ist";

/** A policy as the policy API takes it. */
export interface PolicySpec {
  name: string;
  spiffeidPattern: string;
  pathPattern: string;
  permissions: string[];
}

/** One audit record. */
export interface AuditRecord {
  caller: string | null;
  route: string;
  action: string;
  resource: string | null;
  status: number;
}

/**
 * Starts a cluster, issues the identities and creates the policies.
 *
 * @param identities SVID directory name -> SPIFFE ID
 * @param policies the policies to create as superuser
 * @param options cluster options
 * @returns the started, unlocked cluster
 */
export async function startSdkCluster(
  identities: Record<string, string>,
  policies: PolicySpec[],
  options: ClusterOptions = {},
): Promise<Cluster> {
  const cluster = await Cluster.create({ logLevel: "WARN", ...options });
  try {
    cluster.options.nexusEnv.SPIKE_NEXUS_AUDIT_LOG = auditFile(cluster);
    for (const [name, id] of Object.entries(identities)) {
      await cluster.issue(name, id);
    }
    await cluster.start();
    await cluster.waitUnlocked();
    for (const policy of policies) {
      const res = await cluster.call("superuser", "/v1/acl/policy", policy);
      assert.equal(res.status, 200, `policy ${policy.name}: ${res.status}`);
    }
  } catch (e) {
    await cluster.close();
    throw e;
  }
  return cluster;
}

function auditFile(cluster: Cluster): string {
  return `${cluster.dir}/audit.log`;
}

/**
 * The audit records nexus wrote so far.
 *
 * @param cluster the cluster
 * @returns the records, oldest first
 */
export async function auditRecords(cluster: Cluster): Promise<AuditRecord[]> {
  let text = "";
  try {
    text = await Deno.readTextFile(auditFile(cluster));
  } catch {
    return [];
  }
  return text.split("\n").filter((l) => l.trim() !== "").map((l) =>
    JSON.parse(l).audit as AuditRecord
  );
}

/**
 * A policy granting `permissions` on paths matching `pathPattern` to one
 * SPIFFE ID.
 *
 * @param name the policy name
 * @param spiffeId the exact SPIFFE ID
 * @param pathPattern the path regex
 * @param permissions the permissions
 * @returns the policy
 */
export function policyFor(
  name: string,
  spiffeId: string,
  pathPattern: string,
  permissions: string[],
): PolicySpec {
  return {
    name,
    spiffeidPattern: spiffeId.replaceAll(".", "\\."),
    pathPattern,
    permissions,
  };
}

/**
 * Waits until `check` holds, polling.
 *
 * @param check the condition
 * @param what what is awaited, for the error
 * @param timeoutMs how long to wait
 */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Timed out waiting for ${what}`);
}
