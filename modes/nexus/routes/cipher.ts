// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Encryption as a service (`/v1/cipher/encrypt`, `/v1/cipher/decrypt`):
 * AES-256-GCM under the keyring's cipher-API key, which is no data key, so
 * the API cannot open store records (upstream's decryption oracle).
 *
 * Two wire forms, chosen by the request content type as upstream does:
 * - JSON: encrypt `{plaintext}` -> `{version: 1, nonce, ciphertext}`,
 *   decrypt the reverse; byte fields are standard base64.
 * - `application/octet-stream`: encrypt raw bytes ->
 *   `0x01 ‖ nonce(12) ‖ ciphertext ‖ tag(16)`, decrypt the reverse.
 *
 * A failed authentication tag is a 400 in both forms (upstream answered
 * 500 in JSON mode).
 *
 * @module
 */
import type { MtlsResponse } from "../../../lib/mtls/server.ts";
import {
  DecryptionError,
  NONCE_BYTES,
  openParts,
  seal,
  sealParts,
  TAG_BYTES,
} from "../../../lib/crypto/aead.ts";
import { zero } from "../../../lib/crypto/zero.ts";
import type { JsonValue } from "../../../lib/wire/json_bytes.ts";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import type { PolicyEngine } from "../policy/engine.ts";
import { jsonResponse, readJsonObject, requireAllowed } from "../http.ts";
import { type Route, type RouteContext, routeKey } from "../router.ts";

/** What the cipher routes need from nexus. */
export interface CipherRouteDeps {
  /** The largest plaintext (encrypt) or ciphertext (decrypt), in bytes. */
  readonly maxCipherBytes: number;
  /** The cipher-API key, to decrypt (throws `state_not_ready` while locked). */
  readonly cipherKey: () => CryptoKey;
  /**
   * The cipher-API key for one encryption, counted against its nonce
   * budget (throws `state_not_ready` while locked, and once the budget is
   * spent).
   */
  readonly cipherSealKey: () => CryptoKey | Promise<CryptoKey>;
  /** The policies. */
  readonly engine: PolicyEngine;
}

/** The encrypt route path. */
export const ENCRYPT_PATH = "/v1/cipher/encrypt";
/** The decrypt route path. */
export const DECRYPT_PATH = "/v1/cipher/decrypt";
/** The version byte of the cipher wire format. */
export const CIPHER_VERSION = 1;

const STREAM_TYPE = "application/octet-stream";
const VERSION_PREFIX = new Uint8Array([CIPHER_VERSION]);
const encoder = new TextEncoder();

function badRequest(message: string): ApiError {
  return new ApiError(ErrorCode.BadRequest, message);
}

function isStream(ctx: RouteContext): boolean {
  return ctx.contentType.split(";")[0]!.trim().toLowerCase() === STREAM_TYPE;
}

// Standard base64 with padding, as Go's encoding/base64 StdEncoding writes
// it; whitespace and loose trailing bits are refused. The strict decoder
// refuses every other deviation but skips whitespace, which then shows as
// fewer bytes than the text's length makes (no regex over a 64 KiB field).
function decodeBase64(
  value: JsonValue | undefined,
  field: string,
): Uint8Array<ArrayBuffer> {
  const refused = () => badRequest(`${field} must be a standard base64 string`);
  if (typeof value !== "string") throw refused();
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = Uint8Array.fromBase64(value, { lastChunkHandling: "strict" });
  } catch {
    throw refused();
  }
  if (value.length !== Math.ceil(bytes.length / 3) * 4) {
    zero(bytes);
    throw refused();
  }
  return bytes;
}

// A JSON object whose last member is a long base64 string, written once
// into the response bytes (no JSON.stringify copy of the long string).
function jsonEndingWith(head: string, base64: string): Uint8Array {
  const out = new Uint8Array(head.length + base64.length + 2);
  encoder.encodeInto(head, out);
  encoder.encodeInto(base64, out.subarray(head.length));
  out.set([0x22, 0x7d], head.length + base64.length);
  return out;
}

function checkSize(deps: CipherRouteDeps, length: number, what: string): void {
  if (length > deps.maxCipherBytes) {
    throw badRequest(
      `The ${what} is ${length} bytes, over the ${deps.maxCipherBytes} byte limit`,
    );
  }
}

// The limit is on the ciphertext, tag included, so that whatever encrypt
// returns, decrypt takes back.
function checkPlaintextSize(deps: CipherRouteDeps, length: number): void {
  const limit = deps.maxCipherBytes - TAG_BYTES;
  if (length > limit) {
    throw badRequest(
      `The plaintext is ${length} bytes, over the ${limit} byte limit (the ciphertext limit less the ${TAG_BYTES} byte tag)`,
    );
  }
}

function streamResponse(body: Uint8Array): MtlsResponse {
  return {
    status: 200,
    headers: { "content-type": STREAM_TYPE, "cache-control": "no-store" },
    body,
  };
}

async function decryptOrRefuse(
  deps: CipherRouteDeps,
  nonce: Uint8Array<ArrayBuffer>,
  ciphertext: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return await openParts(deps.cipherKey(), nonce, ciphertext);
  } catch (e) {
    if (e instanceof DecryptionError) {
      throw badRequest(
        "The ciphertext does not authenticate: it is damaged, or was not encrypted by this SPIKE installation",
      );
    }
    throw e;
  }
}

async function encrypt(deps: CipherRouteDeps, ctx: RouteContext) {
  if (isStream(ctx)) {
    checkPlaintextSize(deps, ctx.body.length);
    requireAllowed(ctx.peerId, "cipher.encrypt", undefined, deps.engine);
    // The body itself: WebCrypto copies it when called, and the server
    // zeroes it once the handler settles.
    return streamResponse(
      await seal(
        await deps.cipherSealKey(),
        ctx.body,
        undefined,
        VERSION_PREFIX,
      ),
    );
  }
  // The plaintext is a secret: read byte by byte, not as one body string.
  const request = readJsonObject(ctx.body, { carriesSecrets: true });
  // Absent or null is empty, as upstream's Go client sends a nil slice.
  const plaintext =
    request.plaintext === undefined || request.plaintext === null
      ? new Uint8Array()
      : decodeBase64(request.plaintext, "plaintext");
  try {
    checkPlaintextSize(deps, plaintext.length);
    requireAllowed(ctx.peerId, "cipher.encrypt", undefined, deps.engine);
    const { nonce, ciphertext } = await sealParts(
      await deps.cipherSealKey(),
      plaintext,
    );
    return jsonResponse(
      200,
      jsonEndingWith(
        `{"version":${CIPHER_VERSION},"nonce":"${nonce.toBase64()}","ciphertext":"`,
        ciphertext.toBase64(),
      ),
    );
  } finally {
    zero(plaintext);
  }
}

async function decrypt(deps: CipherRouteDeps, ctx: RouteContext) {
  if (isStream(ctx)) {
    const body = ctx.body;
    if (body.length < 1) throw badRequest("The version byte is missing");
    if (body[0] !== CIPHER_VERSION) {
      // The byte is the caller's; it stays out of the log.
      throw badRequest("Unsupported cipher version");
    }
    if (body.length < 1 + NONCE_BYTES) throw badRequest("The nonce is short");
    checkSize(deps, body.length - 1 - NONCE_BYTES, "ciphertext");
    requireAllowed(ctx.peerId, "cipher.decrypt", undefined, deps.engine);
    // Views, not copies: WebCrypto copies them when called.
    const plaintext = await decryptOrRefuse(
      deps,
      body.subarray(1, 1 + NONCE_BYTES),
      body.subarray(1 + NONCE_BYTES),
    );
    return streamResponse(plaintext);
  }
  const request = readJsonObject(ctx.body);
  if (request.version !== CIPHER_VERSION) {
    throw badRequest(`version must be ${CIPHER_VERSION}`);
  }
  const nonce = decodeBase64(request.nonce, "nonce");
  if (nonce.length !== NONCE_BYTES) {
    throw badRequest(`nonce must be ${NONCE_BYTES} bytes`);
  }
  const ciphertext = decodeBase64(request.ciphertext, "ciphertext");
  checkSize(deps, ciphertext.length, "ciphertext");
  requireAllowed(ctx.peerId, "cipher.decrypt", undefined, deps.engine);
  const plaintext = await decryptOrRefuse(deps, nonce, ciphertext);
  try {
    // One string of the plaintext's base64, not a second in JSON.stringify.
    return jsonResponse(
      200,
      jsonEndingWith('{"plaintext":"', plaintext.toBase64()),
    );
  } finally {
    zero(plaintext);
  }
}

/**
 * The cipher routes, keyed as in a route table.
 *
 * @param deps the size limit, the key holder and the policies
 * @returns route key -> route; both need the root key
 */
export function cipherRoutes(deps: CipherRouteDeps): [string, Route][] {
  return [
    [routeKey(ENCRYPT_PATH), {
      needsUnlock: true,
      handler: (ctx) => encrypt(deps, ctx),
    }],
    [routeKey(DECRYPT_PATH), {
      needsUnlock: true,
      handler: (ctx) => decrypt(deps, ctx),
    }],
  ];
}
