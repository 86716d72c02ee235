// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Hand-written protobuf encoding of the SPIFFE Workload API X.509 messages
 * (`workload.proto`), so the client needs no protobuf library. Only the
 * messages SPIKE uses are covered; unknown fields are skipped, as protobuf
 * requires.
 *
 * @module
 */

/** Raised for bytes that are not a valid encoding of the expected message. */
export class ProtoError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ProtoError";
  }
}

/** `X509SVID`: one X.509-SVID as the Workload API sends it. */
export interface X509SvidMessage {
  /** Field 1: the SPIFFE ID. */
  spiffeId: string;
  /** Field 2: concatenated DER certificates, leaf first. */
  x509Svid: Uint8Array;
  /** Field 3: the private key, unencrypted PKCS#8 DER. */
  x509SvidKey: Uint8Array;
  /** Field 4: concatenated DER CA certificates of the SVID's trust domain. */
  bundle: Uint8Array;
  /** Field 5: an operator-chosen hint, may be empty. */
  hint: string;
}

/** `X509SVIDResponse`: the complete X.509 state of the workload. */
export interface X509SvidResponseMessage {
  /** Field 1: the SVIDs; the first is the default. */
  svids: X509SvidMessage[];
  /** Field 2: DER certificate revocation lists. */
  crl: Uint8Array[];
  /** Field 3: trust domain SPIFFE ID -> concatenated DER CA certificates. */
  federatedBundles: Map<string, Uint8Array>;
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A cursor over protobuf wire bytes. */
class Reader {
  #bytes: Uint8Array;
  #pos = 0;

  constructor(bytes: Uint8Array) {
    // A plain Uint8Array view: on a node Buffer (what grpc-js passes),
    // slice() would share memory instead of copying.
    this.#bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  get done(): boolean {
    return this.#pos >= this.#bytes.length;
  }

  varint(): number {
    // Lengths and tags fit far below 2^53, so plain arithmetic suffices;
    // larger varints are still consumed (up to 10 bytes) to stay in sync.
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.#bytes[this.#pos++];
      if (b === undefined) throw new ProtoError("Truncated varint");
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 128;
    }
    throw new ProtoError("Varint is longer than 10 bytes");
  }

  /** A view (not a copy) of the next length-delimited field. */
  lengthDelimited(): Uint8Array {
    const length = this.varint();
    const end = this.#pos + length;
    if (end > this.#bytes.length) {
      throw new ProtoError("Length-delimited field runs past the end");
    }
    const view = this.#bytes.subarray(this.#pos, end);
    this.#pos = end;
    return view;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        this.#advance(8);
        return;
      case WIRE_LEN:
        this.lengthDelimited();
        return;
      case WIRE_FIXED32:
        this.#advance(4);
        return;
      default:
        throw new ProtoError(`Unsupported wire type ${wireType}`);
    }
  }

  #advance(n: number): void {
    if (this.#pos + n > this.#bytes.length) {
      throw new ProtoError("Fixed-width field runs past the end");
    }
    this.#pos += n;
  }
}

/** Reads every field of a message, calling `onField` for each. */
function readFields(
  bytes: Uint8Array,
  onField: (field: number, wireType: number, reader: Reader) => void,
): void {
  const reader = new Reader(bytes);
  while (!reader.done) {
    const tag = reader.varint();
    const field = Math.floor(tag / 8);
    if (field === 0) throw new ProtoError("Field number 0 is invalid");
    onField(field, tag % 8, reader);
  }
}

function expectLen(field: number, wireType: number): void {
  if (wireType !== WIRE_LEN) {
    throw new ProtoError(`Field ${field} has wire type ${wireType}, want 2`);
  }
}

function decodeString(view: Uint8Array, what: string): string {
  try {
    return utf8.decode(view);
  } catch {
    throw new ProtoError(`${what} is not valid UTF-8`);
  }
}

function decodeX509Svid(bytes: Uint8Array): X509SvidMessage {
  const svid: X509SvidMessage = {
    spiffeId: "",
    x509Svid: new Uint8Array(0),
    x509SvidKey: new Uint8Array(0),
    bundle: new Uint8Array(0),
    hint: "",
  };
  try {
    readFields(bytes, (field, wireType, reader) => {
      if (field < 1 || field > 5) return reader.skip(wireType);
      expectLen(field, wireType);
      const view = reader.lengthDelimited();
      switch (field) {
        case 1:
          svid.spiffeId = decodeString(view, "X509SVID.spiffe_id");
          break;
        case 2:
          svid.x509Svid = view.slice();
          break;
        case 3:
          svid.x509SvidKey.fill(0);
          svid.x509SvidKey = view.slice();
          break;
        case 4:
          svid.bundle = view.slice();
          break;
        case 5:
          svid.hint = decodeString(view, "X509SVID.hint");
          break;
      }
    });
  } catch (e) {
    svid.x509SvidKey.fill(0);
    throw e;
  }
  return svid;
}

function decodeMapEntry(bytes: Uint8Array): [string, Uint8Array] {
  let key = "";
  let value = new Uint8Array(0);
  readFields(bytes, (field, wireType, reader) => {
    if (field === 1) {
      expectLen(field, wireType);
      key = decodeString(reader.lengthDelimited(), "Map key");
    } else if (field === 2) {
      expectLen(field, wireType);
      value = reader.lengthDelimited().slice();
    } else {
      reader.skip(wireType);
    }
  });
  return [key, value];
}

/**
 * Decodes an `X509SVIDResponse`. Byte fields are copies, so the caller can
 * zero the input; on error every key copied so far is zeroed.
 *
 * @param bytes the protobuf message
 * @returns the decoded message
 * @throws {ProtoError} when the bytes are not a valid encoding
 */
export function decodeX509SvidResponse(
  bytes: Uint8Array,
): X509SvidResponseMessage {
  const message: X509SvidResponseMessage = {
    svids: [],
    crl: [],
    federatedBundles: new Map(),
  };
  try {
    readFields(bytes, (field, wireType, reader) => {
      if (field < 1 || field > 3) return reader.skip(wireType);
      expectLen(field, wireType);
      const view = reader.lengthDelimited();
      if (field === 1) message.svids.push(decodeX509Svid(view));
      else if (field === 2) message.crl.push(view.slice());
      else {
        // Protobuf map semantics: a repeated key keeps the last value.
        const [key, value] = decodeMapEntry(view);
        message.federatedBundles.set(key, value);
      }
    });
  } catch (e) {
    for (const svid of message.svids) svid.x509SvidKey.fill(0);
    throw e;
  }
  return message;
}

/** Appends protobuf wire bytes to a growing list of chunks. */
class Writer {
  readonly #chunks: Uint8Array[] = [];
  #length = 0;

  varint(value: number): void {
    const out: number[] = [];
    let v = value;
    while (v >= 0x80) {
      out.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(v);
    this.#push(Uint8Array.from(out));
  }

  bytesField(field: number, bytes: Uint8Array): void {
    this.varint(field * 8 + WIRE_LEN);
    this.varint(bytes.length);
    this.#push(bytes);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let pos = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, pos);
      pos += chunk.length;
    }
    return out;
  }

  #push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }
}

const utf8Encoder = new TextEncoder();

/**
 * Encodes an `X509SVIDResponse`; empty fields are omitted, as proto3 does.
 * Used by Workload API servers (SPIKE's tests play one).
 *
 * @param message the message
 * @returns the protobuf bytes
 */
export function encodeX509SvidResponse(
  message: X509SvidResponseMessage,
): Uint8Array {
  const writer = new Writer();
  for (const svid of message.svids) {
    const inner = new Writer();
    const fields: [number, Uint8Array][] = [
      [1, utf8Encoder.encode(svid.spiffeId)],
      [2, svid.x509Svid],
      [3, svid.x509SvidKey],
      [4, svid.bundle],
      [5, utf8Encoder.encode(svid.hint)],
    ];
    for (const [field, bytes] of fields) {
      if (bytes.length > 0) inner.bytesField(field, bytes);
    }
    writer.bytesField(1, inner.finish());
  }
  for (const crl of message.crl) writer.bytesField(2, crl);
  for (const [key, value] of message.federatedBundles) {
    const entry = new Writer();
    if (key.length > 0) entry.bytesField(1, utf8Encoder.encode(key));
    if (value.length > 0) entry.bytesField(2, value);
    writer.bytesField(3, entry.finish());
  }
  return writer.finish();
}

/**
 * Encodes an `X509SVIDRequest`, which has no fields.
 *
 * @returns the empty message
 */
export function encodeX509SvidRequest(): Uint8Array {
  return new Uint8Array(0);
}
