// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * End-to-end tests of the cipher routes (JSON and octet-stream forms),
 * the lite workload role, and a plain `curl` driving the API with SVID
 * files, against a real nexus process (memory backend) over mTLS; and
 * one direct call of the decrypt handler, to read its refusal message.
 *
 * @module
 */
import "reflect-metadata";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { ApiFixture, expectStatus, TD } from "./nexus_api_support.ts";
import { parseSpiffeId } from "../lib/spiffe/id.ts";
import { ApiError, ErrorCode } from "../lib/wire/errors.ts";
import { cipherRoutes, DECRYPT_PATH } from "../modes/nexus/routes/cipher.ts";
import { PolicyEngine } from "../modes/nexus/policy/engine.ts";
import { routeKey } from "../modes/nexus/router.ts";
import { CURL } from "./reliability_support.ts";

const ENCRYPT = "/v1/cipher/encrypt";
const DECRYPT = "/v1/cipher/decrypt";
const STREAM = "application/octet-stream";
const MAX = 4096;
const LITE_ID = `spiffe://${TD}/spike/workload/role/lite`;

const encoder = new TextEncoder();

function flip(bytes: Uint8Array, index: number): Uint8Array {
  const copy = bytes.slice();
  copy[index]! ^= 0x01;
  return copy;
}

Deno.test("nexus cipher API over mTLS", async (t) => {
  const api = await ApiFixture.create({
    backend: "memory",
    keepers: 1,
    nexusEnv: { SPIKE_NEXUS_CRYPTO_MAX_CIPHERTEXT_SIZE: String(MAX) },
  }, {
    lite: LITE_ID,
    app: `spiffe://${TD}/workload/app`,
  });
  const su = (route: string, body: unknown, type?: string) =>
    api.post("superuser", route, body, type);
  try {
    await t.step("JSON encrypt then decrypt round-trips", async () => {
      const plaintext = encoder.encode("attack at dawn");
      const sealed = await su(ENCRYPT, { plaintext: plaintext.toBase64() });
      expectStatus(sealed, 200);
      assert.equal(sealed.json?.version, 1);
      const nonce = Uint8Array.fromBase64(sealed.json?.nonce as string);
      const ct = Uint8Array.fromBase64(sealed.json?.ciphertext as string);
      assert.equal(nonce.length, 12);
      assert.equal(ct.length, plaintext.length + 16);
      const opened = await su(DECRYPT, sealed.json);
      expectStatus(opened, 200);
      assert.deepEqual(
        Uint8Array.fromBase64(opened.json?.plaintext as string),
        plaintext,
      );
      const again = await su(ENCRYPT, { plaintext: plaintext.toBase64() });
      assert.notEqual(again.json?.nonce, sealed.json?.nonce);
    });

    await t.step("stream encrypt then decrypt round-trips", async () => {
      const plaintext = crypto.getRandomValues(new Uint8Array(1000));
      const sealed = await su(ENCRYPT, plaintext, STREAM);
      expectStatus(sealed, 200);
      assert.equal(sealed.headers["content-type"], STREAM);
      assert.equal(sealed.bytes[0], 1);
      assert.equal(sealed.bytes.length, 1 + 12 + plaintext.length + 16);
      const opened = await su(DECRYPT, sealed.bytes, STREAM);
      expectStatus(opened, 200);
      assert.equal(opened.headers["content-type"], STREAM);
      assert.deepEqual(opened.bytes, plaintext);
      const empty = await su(ENCRYPT, new Uint8Array(0), STREAM);
      expectStatus(empty, 200);
      const back = await su(DECRYPT, empty.bytes, STREAM);
      expectStatus(back, 200);
      assert.equal(back.bytes.length, 0);
    });

    await t.step("the two forms carry the same ciphertext", async () => {
      const sealed = await su(ENCRYPT, encoder.encode("same"), STREAM);
      const json = await su(DECRYPT, {
        version: 1,
        nonce: sealed.bytes.slice(1, 13).toBase64(),
        ciphertext: sealed.bytes.slice(13).toBase64(),
      });
      expectStatus(json, 200);
      assert.equal(
        new TextDecoder().decode(
          Uint8Array.fromBase64(json.json?.plaintext as string),
        ),
        "same",
      );
    });

    await t.step("a tampered ciphertext is 400 in both forms", async () => {
      const sealed = await su(ENCRYPT, encoder.encode("secret"), STREAM);
      for (const index of [1, 12, 13, sealed.bytes.length - 1]) {
        expectStatus(
          await su(DECRYPT, flip(sealed.bytes, index), STREAM),
          400,
          "api_bad_request",
        );
      }
      const json = await su(ENCRYPT, { plaintext: "c2VjcmV0" });
      const ct = Uint8Array.fromBase64(json.json?.ciphertext as string);
      const nonce = Uint8Array.fromBase64(json.json?.nonce as string);
      expectStatus(
        await su(DECRYPT, {
          ...json.json,
          ciphertext: flip(ct, 0).toBase64(),
        }),
        400,
        "api_bad_request",
      );
      expectStatus(
        await su(DECRYPT, { ...json.json, nonce: flip(nonce, 3).toBase64() }),
        400,
        "api_bad_request",
      );
    });

    await t.step(
      "whatever encrypt takes, decrypt gives back; over the limit is 400",
      async () => {
        // The limit counts the ciphertext with its 16-byte tag.
        const largest = new Uint8Array(MAX - 16).fill(7);
        const sealed = await su(ENCRYPT, largest, STREAM);
        expectStatus(sealed, 200);
        const opened = await su(DECRYPT, sealed.bytes, STREAM);
        expectStatus(opened, 200);
        assert.deepEqual(opened.bytes, largest);
        const sealedJson = await su(ENCRYPT, { plaintext: largest.toBase64() });
        expectStatus(sealedJson, 200);
        expectStatus(await su(DECRYPT, sealedJson.json!), 200);
        for (const n of [MAX - 15, MAX, MAX + 1]) {
          expectStatus(
            await su(ENCRYPT, new Uint8Array(n), STREAM),
            400,
            "api_bad_request",
          );
          expectStatus(
            await su(ENCRYPT, { plaintext: new Uint8Array(n).toBase64() }),
            400,
            "api_bad_request",
          );
        }
        // A ciphertext over the limit is refused before any decryption.
        const tooLong = new Uint8Array(1 + 12 + MAX + 1);
        tooLong[0] = 1;
        expectStatus(
          await su(DECRYPT, tooLong, STREAM),
          400,
          "api_bad_request",
        );
        expectStatus(
          await su(DECRYPT, {
            version: 1,
            nonce: tooLong.slice(1, 13).toBase64(),
            ciphertext: tooLong.slice(13).toBase64(),
          }),
          400,
          "api_bad_request",
        );
      },
    );

    await t.step(
      "a JSON encrypt without plaintext, or with null, encrypts empty input as upstream does",
      async () => {
        for (const body of [{}, { plaintext: null }]) {
          const sealed = await su(ENCRYPT, body);
          expectStatus(sealed, 200);
          const opened = await su(DECRYPT, sealed.json!);
          expectStatus(opened, 200);
          assert.equal(opened.json?.plaintext, "");
        }
      },
    );

    await t.step("malformed cipher input is 400", async () => {
      const good = (await su(ENCRYPT, { plaintext: "aGk=" })).json!;
      const badJson: unknown[] = [
        { plaintext: "not base64!" },
        { plaintext: "aGk" },
        { plaintext: "aG k=" },
        { plaintext: "aGk=\n" },
        { plaintext: "\taGk=" },
        { plaintext: "aGl=" },
        { plaintext: "aGk==" },
        { plaintext: "aGk=aGk=" },
        { plaintext: "-_-_" },
        { plaintext: 12 },
        { plaintext: false },
      ];
      for (const body of badJson) {
        expectStatus(await su(ENCRYPT, body), 400, "api_bad_request");
      }
      const badDecrypt: unknown[] = [
        { ...good, version: 2 },
        { ...good, version: "1" },
        { nonce: good.nonce, ciphertext: good.ciphertext },
        { ...good, nonce: new Uint8Array(11).toBase64() },
        { ...good, nonce: new Uint8Array(13).toBase64() },
        { ...good, nonce: "%%%%" },
        { ...good, ciphertext: "***" },
        { ...good, ciphertext: new Uint8Array(15).toBase64() },
        { ...good, ciphertext: undefined },
      ];
      for (const body of badDecrypt) {
        expectStatus(await su(DECRYPT, body), 400, "api_bad_request");
      }
      for (
        const body of [
          new Uint8Array(0),
          new Uint8Array([2, ...new Uint8Array(40)]),
          new Uint8Array([1, 1, 2, 3, 4, 5]),
          new Uint8Array([1, ...new Uint8Array(12), 9]),
        ]
      ) {
        expectStatus(await su(DECRYPT, body, STREAM), 400, "api_bad_request");
      }
      expectStatus(await su(ENCRYPT, "{"), 400, "api_bad_request");
    });

    await t.step(
      "the lite workload may use the cipher but not secrets",
      async () => {
        const sealed = await api.post(
          "lite",
          ENCRYPT,
          encoder.encode("x"),
          STREAM,
        );
        expectStatus(sealed, 200);
        expectStatus(
          await api.post("lite", DECRYPT, sealed.bytes, STREAM),
          200,
        );
        // Even a policy naming the lite ID with super grants no secrets.
        expectStatus(
          await su("/v1/acl/policy", {
            name: "lite-everything",
            spiffeidPattern: `^spiffe://spike\\.ist/spike/workload/role/lite$`,
            pathPattern: ".*",
            permissions: ["super"],
          }),
          200,
        );
        expectStatus(
          await su("/v1/store/secrets", { path: "a/b", values: { k: "v" } }),
          200,
        );
        for (
          const [route, body] of [
            ["/v1/store/secrets?action=get", { path: "a/b" }],
            ["/v1/store/secrets", { path: "a/b", values: { k: "x" } }],
            ["/v1/store/secrets?action=list", {}],
            ["/v1/acl/policy?action=list", {}],
          ] as const
        ) {
          expectStatus(
            await api.post("lite", route, body),
            401,
            "access_unauthorized",
          );
        }
      },
    );

    await t.step(
      "other workloads need execute on the cipher path",
      async () => {
        expectStatus(
          await api.post("app", ENCRYPT, { plaintext: "aGk=" }),
          401,
          "access_unauthorized",
        );
        const sealed = await su(ENCRYPT, encoder.encode("x"), STREAM);
        expectStatus(
          await api.post("app", DECRYPT, sealed.bytes, STREAM),
          401,
          "access_unauthorized",
        );
        expectStatus(
          await su("/v1/acl/policy", {
            name: "app-cipher",
            spiffeidPattern: `^spiffe://spike\\.ist/workload/app$`,
            pathPattern: "spike/system/cipher/exec",
            permissions: ["execute"],
          }),
          200,
        );
        expectStatus(
          await api.post("app", ENCRYPT, { plaintext: "aGk=" }),
          200,
        );
        expectStatus(await api.post("app", DECRYPT, sealed.bytes, STREAM), 200);
        expectStatus(
          await api.post("app", "/v1/store/secrets?action=get", {
            path: "a/b",
          }),
          401,
          "access_unauthorized",
        );
      },
    );
  } finally {
    await api.close();
  }
});

Deno.test({
  name: "curl drives the API with SVID files and a pinned nexus key",
  ignore: !CURL,
  fn: async () => {
    const api = await ApiFixture.create({ backend: "memory", keepers: 1 });
    const dir = api.cluster.svidDir("superuser");
    const nexusCert = new x509.X509Certificate(
      await Deno.readTextFile(`${api.cluster.svidDir("nexus")}/svid.pem`),
    );
    const pin = new Uint8Array(
      await crypto.subtle.digest("SHA-256", nexusCert.publicKey.rawData),
    ).toBase64();
    const curl = async (
      extra: string[],
      route: string,
      stdin?: Uint8Array,
    ) => {
      const child = new Deno.Command("curl", {
        args: [
          "--silent",
          "--show-error",
          "--insecure",
          "--pinnedpubkey",
          `sha256//${pin}`,
          "--cert",
          `${dir}/svid.pem`,
          "--key",
          `${dir}/svid_key.pem`,
          ...extra,
          `${api.cluster.nexusUrl}${route}`,
        ],
        stdin: stdin ? "piped" : "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      if (stdin) {
        const writer = child.stdin.getWriter();
        await writer.write(stdin);
        await writer.close();
      }
      return await child.output();
    };
    try {
      const put = await curl(
        ["--data", '{"path":"apps/db","values":{"pass":"s3cret"}}'],
        "/v1/store/secrets",
      );
      assert.equal(new TextDecoder().decode(put.stdout), "{}");
      const get = await curl(
        ["--data", '{"path":"apps/db"}'],
        "/v1/store/secrets?action=get",
      );
      assert.deepEqual(JSON.parse(new TextDecoder().decode(get.stdout)), {
        data: { pass: "s3cret" },
      });
      const stream = ["-H", `Content-Type: ${STREAM}`, "--data-binary", "@-"];
      const sealed = await curl(
        stream,
        "/v1/cipher/encrypt",
        encoder.encode("hello"),
      );
      assert.equal(sealed.stdout[0], 1);
      const opened = await curl(stream, "/v1/cipher/decrypt", sealed.stdout);
      assert.equal(new TextDecoder().decode(opened.stdout), "hello");
      // Without the flag, curl refuses: the SVID has no DNS name or IP.
      const strict = await new Deno.Command("curl", {
        args: [
          "--silent",
          "--cacert",
          `${dir}/svid_bundle.pem`,
          "--cert",
          `${dir}/svid.pem`,
          "--key",
          `${dir}/svid_key.pem`,
          "--data",
          "{}",
          `${api.cluster.nexusUrl}/v1/store/secrets?action=list`,
        ],
        stdout: "null",
        stderr: "null",
      }).output();
      assert.notEqual(strict.code, 0);
      // A wrong pin is refused even with --insecure.
      const wrongPin = await new Deno.Command("curl", {
        args: [
          "--silent",
          "--insecure",
          "--pinnedpubkey",
          `sha256//${new Uint8Array(32).toBase64()}`,
          "--cert",
          `${dir}/svid.pem`,
          "--key",
          `${dir}/svid_key.pem`,
          "--data",
          "{}",
          `${api.cluster.nexusUrl}/v1/store/secrets?action=list`,
        ],
        stdout: "null",
        stderr: "null",
      }).output();
      assert.equal(wrongPin.code, 90);
    } finally {
      await api.close();
    }
  },
});

Deno.test("stream decrypt refuses an unknown version without repeating the caller's byte", async () => {
  const routes = new Map(cipherRoutes({
    maxCipherBytes: MAX,
    cipherKey: () => {
      throw new Error("Locked");
    },
    cipherSealKey: () => {
      throw new Error("Locked");
    },
    engine: new PolicyEngine(),
  }));
  const decrypt = routes.get(routeKey(DECRYPT_PATH))!;
  for (const version of [0, 2, 0xab, 0xff]) {
    const body = new Uint8Array(64).fill(0x5a);
    body[0] = version;
    await assert.rejects(
      decrypt.handler({
        peerId: parseSpiffeId(`spiffe://${TD}/spike/pilot/role/superuser`),
        body,
        contentType: STREAM,
        resource: null,
      }),
      (e: unknown) => {
        assert.ok(e instanceof ApiError);
        assert.equal(e.code, ErrorCode.BadRequest);
        assert.equal(e.message, "Unsupported cipher version");
        assert.ok(!/\d/.test(e.message));
        return true;
      },
    );
  }
});
