// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { DerError, pemFromDer, splitDerSequences } from "../lib/spiffe/der.ts";
import {
  decodeX509SvidResponse,
  encodeX509SvidResponse,
  ProtoError,
  type X509SvidResponseMessage,
} from "../lib/spiffe/workload_proto.ts";

const bytes = (...b: number[]) => Uint8Array.from(b);

function sample(): X509SvidResponseMessage {
  return {
    svids: [
      {
        spiffeId: "spiffe://spike.ist/spike/nexus",
        x509Svid: bytes(0x30, 0x01, 0xaa),
        x509SvidKey: bytes(0x30, 0x02, 0x01, 0x02),
        bundle: bytes(0x30, 0x00),
        hint: "internal",
      },
      {
        spiffeId: "spiffe://spike.ist/other",
        x509Svid: bytes(0x30, 0x00),
        x509SvidKey: bytes(0x30, 0x00),
        bundle: bytes(0x30, 0x00),
        hint: "",
      },
    ],
    crl: [bytes(1, 2, 3)],
    federatedBundles: new Map([
      ["spiffe://example.org", bytes(0x30, 0x00)],
      ["spiffe://other.org", new Uint8Array(300).fill(7)],
    ]),
  };
}

Deno.test("X509SVIDResponse survives an encode/decode round trip", () => {
  const message = sample();
  assert.deepEqual(
    decodeX509SvidResponse(encodeX509SvidResponse(message)),
    message,
  );
});

Deno.test("X509SVIDResponse uses the field numbers of workload.proto", () => {
  const encoded = encodeX509SvidResponse({
    svids: [{
      spiffeId: "a",
      x509Svid: bytes(2),
      x509SvidKey: bytes(3),
      bundle: bytes(4),
      hint: "e",
    }],
    crl: [bytes(9)],
    federatedBundles: new Map([["k", bytes(8)]]),
  });
  assert.deepEqual(
    encoded,
    bytes(
      0x0a,
      15,
      0x0a,
      1,
      0x61,
      0x12,
      1,
      2,
      0x1a,
      1,
      3,
      0x22,
      1,
      4,
      0x2a,
      1,
      0x65,
      0x12,
      1,
      9,
      0x1a,
      6,
      0x0a,
      1,
      0x6b,
      0x12,
      1,
      8,
    ),
  );
});

Deno.test("X509SVIDResponse decoding skips unknown fields of every wire type", () => {
  const known = encodeX509SvidResponse(sample());
  const unknown = bytes(
    0x48,
    0x96,
    0x01, // field 9 varint 150
    0x51,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8, // field 10 fixed64
    0x5a,
    2,
    0xff,
    0xff, // field 11 length-delimited
    0x65,
    1,
    2,
    3,
    4, // field 12 fixed32
  );
  const decoded = decodeX509SvidResponse(
    new Uint8Array([...unknown, ...known]),
  );
  assert.deepEqual(decoded, sample());
});

Deno.test("X509SVIDResponse decoding keeps the last value of a repeated map key", () => {
  const first = encodeX509SvidResponse({
    svids: [],
    crl: [],
    federatedBundles: new Map([["spiffe://a.org", bytes(1)]]),
  });
  const second = encodeX509SvidResponse({
    svids: [],
    crl: [],
    federatedBundles: new Map([["spiffe://a.org", bytes(2)]]),
  });
  const decoded = decodeX509SvidResponse(new Uint8Array([...first, ...second]));
  assert.deepEqual(decoded.federatedBundles.get("spiffe://a.org"), bytes(2));
});

Deno.test("X509SVIDResponse decoding copies fields out of a node Buffer", () => {
  const wire = Buffer.from(encodeX509SvidResponse(sample()));
  const decoded = decodeX509SvidResponse(wire);
  wire.fill(0);
  assert.deepEqual(decoded, sample());
});

Deno.test("X509SVIDResponse decoding rejects malformed input", () => {
  const encoded = encodeX509SvidResponse(sample());
  assert.throws(
    () => decodeX509SvidResponse(encoded.subarray(0, 20)),
    ProtoError,
  );
  assert.throws(
    () => decodeX509SvidResponse(bytes(0x08, 0x01)),
    /wire type 0, want 2/,
  );
  assert.throws(() => decodeX509SvidResponse(bytes(0x00)), /Field number 0/);
  assert.throws(
    () => decodeX509SvidResponse(bytes(0x4b)),
    /Unsupported wire type 3/,
  );
  assert.throws(
    () => decodeX509SvidResponse(bytes(0x48, 0x80)),
    /Truncated varint/,
  );
  assert.throws(
    () => decodeX509SvidResponse(bytes(0x0a, 3, 0x0a, 1, 0xff)),
    /spiffe_id is not valid UTF-8/,
  );
});

Deno.test("DER splitting separates concatenated SEQUENCEs of every length form", () => {
  const short = bytes(0x30, 0x01, 0x05);
  const long1 = new Uint8Array([
    0x30,
    0x81,
    0x80,
    ...new Uint8Array(0x80).fill(1),
  ]);
  const long2 = new Uint8Array([
    0x30,
    0x82,
    0x01,
    0x00,
    ...new Uint8Array(256).fill(2),
  ]);
  const parts = splitDerSequences(
    new Uint8Array([...short, ...long1, ...long2]),
  );
  assert.deepEqual(parts, [short, long1, long2]);
  assert.deepEqual(splitDerSequences(new Uint8Array(0)), []);
});

Deno.test("DER splitting rejects values that are not complete SEQUENCEs", () => {
  assert.throws(() => splitDerSequences(bytes(0x02, 0x01, 0x00)), DerError);
  assert.throws(() => splitDerSequences(bytes(0x30)), /truncated/);
  assert.throws(
    () => splitDerSequences(bytes(0x30, 0x05, 1)),
    /runs past the end/,
  );
  assert.throws(
    () => splitDerSequences(bytes(0x30, 0x80, 0, 0)),
    /unsupported length form/,
  );
  assert.throws(() => splitDerSequences(bytes(0x30, 0x82, 0x01)), /truncated/);
});

Deno.test("PEM from DER matches standard base64 in 64-column lines", () => {
  for (let n = 0; n < 140; n++) {
    const der = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
    const b64 = btoa(String.fromCharCode(...der));
    const lines = b64.match(/.{1,64}/g) ?? [];
    const want = [
      "-----BEGIN PRIVATE KEY-----",
      ...lines,
      "-----END PRIVATE KEY-----",
      "",
    ]
      .join("\n");
    assert.equal(
      new TextDecoder().decode(pemFromDer("PRIVATE KEY", der)),
      want,
    );
  }
});
