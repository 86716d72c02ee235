// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * End-to-end test of the audit log: one JSON line per request naming the
 * caller, route, action, resource and outcome, and no secret value in the
 * audit file or the nexus log, even when the value lands in a rejected
 * field.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  ApiFixture,
  expectStatus,
  rawRequest,
  TD,
} from "./nexus_api_support.ts";

const VALUE = "Sup3r-S3cret-Value-4-Audit";
const SU = `spiffe://${TD}/spike/pilot/role/superuser`;
const APP = `spiffe://${TD}/workload/app`;

interface AuditLine {
  time: string;
  audit: {
    trail: string;
    caller: string | null;
    route: string;
    action: string;
    resource: string | null;
    outcome: string;
    status: number;
    err: string | null;
    durationMs: number;
  };
}

async function auditLines(file: string): Promise<AuditLine[]> {
  const text = await Deno.readTextFile(file);
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

Deno.test("nexus audits every request without secret values", async () => {
  const auditDir = await Deno.makeTempDir({ prefix: "spike-audit-" });
  const auditFile = `${auditDir}/audit.log`;
  const api = await ApiFixture.create({
    backend: "memory",
    keepers: 1,
    logLevel: "DEBUG",
    nexusEnv: { SPIKE_NEXUS_AUDIT_LOG: auditFile },
  }, { app: APP });
  try {
    const skip = (await auditLines(auditFile)).length;
    const b64 = new TextEncoder().encode(VALUE).toBase64();
    const calls: [string, string, unknown, number, string | null, string][] = [
      [
        "superuser",
        "/v1/store/secrets",
        { path: "apps/db", values: { pass: VALUE } },
        200,
        "apps/db",
        "default",
      ],
      [
        "superuser",
        "/v1/store/secrets?action=get",
        { path: "apps/db" },
        200,
        "apps/db",
        "get",
      ],
      [
        "app",
        "/v1/store/secrets?action=get",
        { path: "apps/db" },
        401,
        "apps/db",
        "get",
      ],
      [
        "superuser",
        "/v1/store/secrets?action=get",
        { path: "apps/missing" },
        404,
        "apps/missing",
        "get",
      ],
      [
        "superuser",
        "/v1/store/secrets",
        { path: `bad path ${VALUE}`, values: { pass: VALUE } },
        400,
        null,
        "default",
      ],
      [
        "superuser",
        "/v1/store/secrets",
        { path: "apps/db", values: { [`bad!${VALUE}`]: VALUE } },
        400,
        "apps/db",
        "default",
      ],
      [
        "superuser",
        "/v1/acl/policy",
        {
          name: "app-read",
          spiffeidPattern: `^spiffe://spike\\.ist/workload/app$`,
          pathPattern: "apps/.*",
          permissions: ["read"],
        },
        200,
        "app-read",
        "default",
      ],
      [
        "superuser",
        "/v1/acl/policy?action=get",
        { id: "missing-policy" },
        404,
        "missing-policy",
        "get",
      ],
      [
        "superuser",
        "/v1/cipher/encrypt",
        { plaintext: b64 },
        200,
        null,
        "default",
      ],
      [
        "superuser",
        "/v1/nope?action=zap",
        {},
        400,
        null,
        "zap",
      ],
    ];
    for (const [who, route, body, status] of calls) {
      expectStatus(await api.post(who, route, body), status);
    }
    const other = await rawRequest(
      `${api.cluster.nexusUrl}/v1/store/secrets`,
      "GET",
      api.cluster.svidDir("superuser"),
    );
    assert.equal(other.status, 405);
    // Refused by the TLS server before any route runs, yet audited too.
    const tooLarge = await api.post(
      "superuser",
      "/v1/store/secrets?action=get",
      new TextEncoder().encode(`{"path":"${VALUE}"}`.padEnd(2 << 20)),
    );
    expectStatus(tooLarge, 413, "api_entity_too_large");

    const lines = (await auditLines(auditFile)).slice(skip);
    assert.equal(lines.length, calls.length + 2);
    calls.forEach(([who, route, , status, resource, action], i) => {
      const { audit, time } = lines[i]!;
      assert.ok(!Number.isNaN(Date.parse(time)));
      assert.equal(audit.caller, who === "app" ? APP : SU);
      assert.equal(audit.route, route.split("?")[0]);
      assert.equal(audit.action, action);
      assert.equal(audit.status, status);
      assert.equal(
        audit.outcome,
        status === 200
          ? "success"
          : status === 401
          ? "denied"
          : status < 500
          ? "refused"
          : "error",
      );
      assert.equal(audit.err === null, status === 200);
      assert.match(audit.trail, /^[a-zA-Z0-9]{8}$/);
      assert.equal(typeof audit.durationMs, "number");
      assert.equal(audit.resource, resource);
    });
    const other405 = lines.at(-2)!.audit;
    assert.equal(other405.status, 405);
    assert.equal(other405.err, "api_method_not_allowed");
    const last = lines.at(-1)!.audit;
    assert.match(last.trail, /^[a-zA-Z0-9]{8}$/);
    assert.deepEqual({ ...last, trail: "" }, {
      trail: "",
      caller: SU,
      route: "/v1/store/secrets",
      action: "get",
      resource: null,
      outcome: "refused",
      status: 413,
      err: "api_entity_too_large",
      durationMs: 0,
    });

    await api.cluster.stopNexus("SIGTERM");
    const auditText = await Deno.readTextFile(auditFile);
    assert.equal(auditText.includes(VALUE), false);
    assert.equal(auditText.includes(b64), false);
    let refusals = 0;
    for await (const entry of Deno.readDir(`${api.cluster.dir}/logs`)) {
      const text = await Deno.readTextFile(
        `${api.cluster.dir}/logs/${entry.name}`,
      );
      assert.equal(text.includes(VALUE), false, `${entry.name} holds it`);
      assert.equal(text.includes(b64), false, `${entry.name} holds it`);
      refusals += text.split("\n").filter((l) =>
        l.includes('"Request refused"')
      ).length;
    }
    // The log is not empty: it explains each refusal (without the value).
    assert.ok(refusals >= 5, `${refusals} refusals logged`);
  } finally {
    await api.close();
    await Deno.remove(auditDir, { recursive: true });
  }
});
