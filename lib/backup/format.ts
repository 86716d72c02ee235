// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The SPIKE backup file: a logical export of a store, as encrypted as the
 * store itself (the same sealed records and sealed keyring; paths, policy
 * names and the meta in plaintext, as in the store), integrity-protected
 * by a digest and a MAC under a key of the root key.
 *
 * Layout: `SPIKEBAK` (8 bytes), format version (1 byte), then frames of
 * `type (1 byte) ‖ length (4 bytes, big-endian) ‖ payload`:
 *
 * - `H` header, JSON: store id, schema, when it was made, and the key it
 *   needs (key id, key check, split, commitments);
 * - `K` the sealed keyring;
 * - `S` one secret path: `u16 path length ‖ path ‖ u64 revision ‖ u32 head
 *   length ‖ head ‖ u32 versions ‖ (u64 version ‖ u32 length ‖ record)…`;
 * - `G` the policy set: `u64 generation ‖ record`;
 * - `P` one policy: `u16 name length ‖ name ‖ record`;
 * - `E` the end, JSON: row counts, the SHA-256 digest of every byte before
 *   this frame, and `HMAC-SHA256(backup key, "spike/v2/backup" ‖ digest)`,
 *   where the backup key is derived from the root key (`kdf.ts`).
 *
 * The digest is checked by anyone (a damaged or cut file); the MAC only
 * with the root key, so nexus checks it when it first unlocks a restored
 * store: a file changed by someone without the key does not unlock.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";

/** The first bytes of every backup file. */
export const BACKUP_MAGIC = new TextEncoder().encode("SPIKEBAK");
/** The version of the layout this build writes and reads. */
export const BACKUP_FORMAT = 1;

const MAC_LABEL = new TextEncoder().encode("spike/v2/backup");
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
/** The largest frame accepted: a secret with every version at the size limit. */
const MAX_FRAME = 1 << 30;

/** Raised for a file that is not a whole, undamaged SPIKE backup. */
export class BackupFormatError extends Error {
  /** Creates the error; the message never quotes file content. */
  constructor(message: string) {
    super(message);
    this.name = "BackupFormatError";
  }
}

/** What the header says about the root key the backup needs. */
export interface BackupKeyInfo {
  /** A short fingerprint of the key (store id and key check). */
  readonly id: string;
  /** The key-check value, base64. */
  readonly keyCheck: string;
  /** Shares needed to rebuild the key. */
  readonly threshold: number;
  /** Number of shares. */
  readonly shares: number;
  /** Commitment per share, base64. */
  readonly commitments: readonly string[];
  /** When the key was made, if known. */
  readonly created: string | null;
}

/** The header frame. */
export interface BackupHeader {
  /** Always `spike-backup`. */
  readonly format: "spike-backup";
  /** RFC 3339 time the snapshot was taken. */
  readonly created: string;
  /** The store id, hex. */
  readonly storeId: string;
  /** The store schema of the rows. */
  readonly schema: number;
  /** The key the backup needs. */
  readonly key: BackupKeyInfo;
  /** The backend it was taken from. */
  readonly backend: string;
}

/** One secret path with its records. */
export interface BackupSecret {
  /** The path. */
  readonly path: string;
  /** Its revision. */
  readonly revision: number;
  /** The sealed head. */
  readonly head: Uint8Array<ArrayBuffer>;
  /** Its version rows, lowest first. */
  readonly versions: readonly {
    readonly version: number;
    readonly record: Uint8Array<ArrayBuffer>;
  }[];
}

/** Row counts, as the end frame states them. */
export interface BackupCounts {
  /** Secret paths. */
  readonly secrets: number;
  /** Version rows. */
  readonly versions: number;
  /** Policies. */
  readonly policies: number;
}

/** The end frame. */
export interface BackupEnd extends BackupCounts {
  /** SHA-256 of the file before this frame, hex. */
  readonly digest: string;
  /** The MAC over the digest, base64. */
  readonly mac: string;
}

/** One frame, decoded. */
export type BackupFrame =
  | { readonly type: "header"; readonly header: BackupHeader }
  | { readonly type: "keyring"; readonly keyring: Uint8Array<ArrayBuffer> }
  | { readonly type: "secret"; readonly secret: BackupSecret }
  | {
    readonly type: "policySet";
    readonly generation: number;
    readonly record: Uint8Array<ArrayBuffer>;
  }
  | {
    readonly type: "policy";
    readonly name: string;
    readonly record: Uint8Array<ArrayBuffer>;
  }
  | { readonly type: "end"; readonly end: BackupEnd };

const TYPE = {
  header: 0x48,
  keyring: 0x4b,
  secret: 0x53,
  policySet: 0x47,
  policy: 0x50,
  end: 0x45,
} as const;

/**
 * The MAC of a backup's digest.
 *
 * @param key the backup key (`PurposeKeys.backup`)
 * @param digest the SHA-256 digest of the file before its end frame
 * @returns the 32-byte MAC
 */
export async function backupMac(
  key: CryptoKey,
  digest: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  const message = new Uint8Array(MAC_LABEL.length + digest.length);
  message.set(MAC_LABEL);
  message.set(digest, MAC_LABEL.length);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, message));
}

/**
 * Whether a MAC matches a digest under a backup key.
 *
 * @param key the backup key of a candidate root key
 * @param digest the digest
 * @param mac the MAC the file carries
 * @returns true when the file was made under this key
 */
export function verifyBackupMac(
  key: CryptoKey,
  digest: Uint8Array<ArrayBuffer>,
  mac: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  const message = new Uint8Array(MAC_LABEL.length + digest.length);
  message.set(MAC_LABEL);
  message.set(digest, MAC_LABEL.length);
  return crypto.subtle.verify("HMAC", key, mac, message);
}

/** Builds frames; appends them to a byte buffer handed out in chunks. */
class FrameBuilder {
  #parts: Uint8Array[] = [];
  #size = 0;

  bytes(b: Uint8Array): this {
    this.#parts.push(b);
    this.#size += b.length;
    return this;
  }

  u16(n: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, n);
    return this.bytes(b);
  }

  u32(n: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    return this.bytes(b);
  }

  u64(n: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n));
    return this.bytes(b);
  }

  text16(s: string): this {
    const b = encoder.encode(s);
    if (b.length > 0xffff) {
      throw new BackupFormatError("A path or policy name is too long");
    }
    return this.u16(b.length).bytes(b);
  }

  frame(type: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(5 + this.#size);
    out[0] = type;
    new DataView(out.buffer).setUint32(1, this.#size);
    let at = 5;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/**
 * Writes a backup: frames in order, with the digest kept as they go and
 * the end frame made last.
 */
export class BackupWriter {
  readonly #hash: Hash = createHash("sha256");
  #counts = { secrets: 0, versions: 0, policies: 0 };
  #ended = false;

  #out(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
    if (this.#ended) throw new BackupFormatError("The backup has ended");
    this.#hash.update(bytes);
    return bytes;
  }

  /**
   * The magic, the version and the header frame.
   *
   * @param header the header
   * @returns the bytes
   */
  start(header: BackupHeader): Uint8Array<ArrayBuffer> {
    const json = encoder.encode(JSON.stringify(header));
    const head = new Uint8Array(BACKUP_MAGIC.length + 1);
    head.set(BACKUP_MAGIC);
    head[BACKUP_MAGIC.length] = BACKUP_FORMAT;
    const frame = new FrameBuilder().bytes(json).frame(TYPE.header);
    const out = new Uint8Array(head.length + frame.length);
    out.set(head);
    out.set(frame, head.length);
    return this.#out(out);
  }

  /**
   * The keyring frame.
   *
   * @param sealed the sealed keyring
   * @returns the bytes
   */
  keyring(sealed: Uint8Array): Uint8Array<ArrayBuffer> {
    return this.#out(new FrameBuilder().bytes(sealed).frame(TYPE.keyring));
  }

  /**
   * One secret path's frame.
   *
   * @param s the path and its records
   * @returns the bytes
   */
  secret(s: BackupSecret): Uint8Array<ArrayBuffer> {
    const b = new FrameBuilder().text16(s.path).u64(s.revision)
      .u32(s.head.length).bytes(s.head).u32(s.versions.length);
    for (const v of s.versions) {
      b.u64(v.version).u32(v.record.length).bytes(v.record);
    }
    this.#counts.secrets++;
    this.#counts.versions += s.versions.length;
    return this.#out(b.frame(TYPE.secret));
  }

  /**
   * The policy set's frame.
   *
   * @param generation its generation
   * @param record its sealed record
   * @returns the bytes
   */
  policySet(generation: number, record: Uint8Array): Uint8Array<ArrayBuffer> {
    return this.#out(
      new FrameBuilder().u64(generation).bytes(record).frame(TYPE.policySet),
    );
  }

  /**
   * One policy's frame.
   *
   * @param name its name
   * @param record its sealed record
   * @returns the bytes
   */
  policy(name: string, record: Uint8Array): Uint8Array<ArrayBuffer> {
    this.#counts.policies++;
    return this.#out(
      new FrameBuilder().text16(name).bytes(record).frame(TYPE.policy),
    );
  }

  /**
   * The end frame: counts, digest, and the MAC made by `mac`.
   *
   * @param mac makes the MAC of the digest (under the backup key)
   * @returns the bytes
   */
  async end(
    mac: (digest: Uint8Array<ArrayBuffer>) => Promise<Uint8Array>,
  ): Promise<Uint8Array<ArrayBuffer>> {
    const digest = new Uint8Array(this.#hash.digest());
    this.#ended = true;
    const end: BackupEnd = {
      ...this.#counts,
      digest: digest.toHex(),
      mac: (await mac(digest)).toBase64(),
    };
    return new FrameBuilder().bytes(encoder.encode(JSON.stringify(end)))
      .frame(TYPE.end);
  }
}

/** Reads fields of one frame's payload, refusing to read past it. */
class Cursor {
  readonly #view: DataView;
  readonly #bytes: Uint8Array<ArrayBuffer>;
  #at = 0;

  constructor(bytes: Uint8Array<ArrayBuffer>) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  #need(n: number): void {
    if (this.#at + n > this.#bytes.length) {
      throw new BackupFormatError("A frame of the backup is cut short");
    }
  }

  u16(): number {
    this.#need(2);
    const n = this.#view.getUint16(this.#at);
    this.#at += 2;
    return n;
  }

  u32(): number {
    this.#need(4);
    const n = this.#view.getUint32(this.#at);
    this.#at += 4;
    return n;
  }

  u64(): number {
    this.#need(8);
    const n = this.#view.getBigUint64(this.#at);
    this.#at += 8;
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new BackupFormatError("A number in the backup is too large");
    }
    return Number(n);
  }

  bytes(n: number): Uint8Array<ArrayBuffer> {
    this.#need(n);
    const out = this.#bytes.slice(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  text16(): string {
    try {
      return decoder.decode(this.bytes(this.u16()));
    } catch (e) {
      if (e instanceof BackupFormatError) throw e;
      throw new BackupFormatError("A name in the backup is not UTF-8");
    }
  }

  rest(): Uint8Array<ArrayBuffer> {
    return this.bytes(this.#bytes.length - this.#at);
  }

  done(): void {
    if (this.#at !== this.#bytes.length) {
      throw new BackupFormatError("A frame of the backup has extra bytes");
    }
  }
}

function json(payload: Uint8Array): Record<string, unknown> {
  try {
    const value = JSON.parse(decoder.decode(payload));
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      return value;
    }
  } catch {
    // Refused below.
  }
  throw new BackupFormatError("A frame of the backup is not a JSON object");
}

const isCount = (v: unknown): v is number =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

function parseHeader(payload: Uint8Array): BackupHeader {
  const h = json(payload);
  const k = h.key as Record<string, unknown> | undefined;
  if (
    h.format !== "spike-backup" || typeof h.created !== "string" ||
    typeof h.storeId !== "string" || !isCount(h.schema) ||
    typeof h.backend !== "string" || typeof k !== "object" || k === null ||
    typeof k.id !== "string" || typeof k.keyCheck !== "string" ||
    !isCount(k.threshold) || !isCount(k.shares) ||
    !Array.isArray(k.commitments) ||
    !k.commitments.every((c) => typeof c === "string") ||
    !(k.created === null || typeof k.created === "string")
  ) {
    throw new BackupFormatError("The backup header is malformed");
  }
  return h as unknown as BackupHeader;
}

function parseEnd(payload: Uint8Array): BackupEnd {
  const e = json(payload);
  if (
    !isCount(e.secrets) || !isCount(e.versions) || !isCount(e.policies) ||
    typeof e.digest !== "string" || typeof e.mac !== "string"
  ) {
    throw new BackupFormatError("The end of the backup is malformed");
  }
  return e as unknown as BackupEnd;
}

function parseSecret(payload: Uint8Array<ArrayBuffer>): BackupSecret {
  const c = new Cursor(payload);
  const path = c.text16();
  const revision = c.u64();
  const head = c.bytes(c.u32());
  const count = c.u32();
  const versions: { version: number; record: Uint8Array<ArrayBuffer> }[] = [];
  for (let i = 0; i < count; i++) {
    const version = c.u64();
    versions.push({ version, record: c.bytes(c.u32()) });
  }
  c.done();
  return { path, revision, head, versions };
}

type Stage = "magic" | "header" | "keyring" | "rows" | "ended";

/**
 * Reads a backup incrementally: push chunks as they arrive, take the
 * frames they complete. Checks the order of frames, the counts and the
 * digest; the MAC is for whoever holds the key.
 */
export class BackupReader {
  readonly #hash: Hash = createHash("sha256");
  #chunks: Uint8Array[] = [];
  #size = 0;
  /** The length of the frame being gathered, once its header is in. */
  #next = 0;
  #stage: Stage = "magic";
  #counts = { secrets: 0, versions: 0, policies: 0 };
  #digest: Uint8Array<ArrayBuffer> | undefined;

  /** The SHA-256 digest of the file before its end frame, once read. */
  get digest(): Uint8Array<ArrayBuffer> | undefined {
    return this.#digest;
  }

  /**
   * Takes the next bytes of the file.
   *
   * @param chunk the bytes
   * @returns the frames completed by them, in order
   * @throws {BackupFormatError} for anything that is not a valid backup
   */
  push(chunk: Uint8Array): BackupFrame[] {
    if (this.#ended) {
      if (chunk.length > 0) {
        throw new BackupFormatError("The backup has bytes after its end");
      }
      return [];
    }
    // A copy: callers may reuse their read buffer.
    this.#chunks.push(chunk.slice());
    this.#size += chunk.length;
    const frames: BackupFrame[] = [];
    // Chunks are joined only once the next frame is whole in them, so a
    // large frame arriving in many small chunks is copied once.
    while (!this.#ended && this.#size >= this.#wanted()) {
      const joined = this.#join();
      if (this.#stage === "magic") {
        this.#magic(joined);
        this.#consume(joined, BACKUP_MAGIC.length + 1);
        continue;
      }
      const length = new DataView(joined.buffer).getUint32(1);
      if (length > MAX_FRAME) {
        throw new BackupFormatError("A frame of the backup is too large");
      }
      if (joined.length < 5 + length) {
        this.#next = 5 + length;
        continue;
      }
      const type = joined[0]!;
      if (type === TYPE.end) {
        this.#digest = new Uint8Array(this.#hash.digest());
      } else {
        this.#hash.update(joined.subarray(0, 5 + length));
      }
      frames.push(this.#frame(type, joined.slice(5, 5 + length)));
      this.#consume(joined, 5 + length);
    }
    if (this.#ended && this.#size > 0) {
      throw new BackupFormatError("The backup has bytes after its end");
    }
    return frames;
  }

  get #ended(): boolean {
    return this.#stage === "ended";
  }

  // Bytes needed before the next step can run.
  #wanted(): number {
    if (this.#stage === "magic") return BACKUP_MAGIC.length + 1;
    return Math.max(5, this.#next);
  }

  #join(): Uint8Array<ArrayBuffer> {
    if (this.#chunks.length === 1 && this.#chunks[0]!.byteOffset === 0) {
      return this.#chunks[0] as Uint8Array<ArrayBuffer>;
    }
    const joined = new Uint8Array(this.#size);
    let at = 0;
    for (const c of this.#chunks) {
      joined.set(c, at);
      at += c.length;
    }
    this.#chunks = [joined];
    return joined;
  }

  #consume(joined: Uint8Array<ArrayBuffer>, n: number): void {
    const rest = joined.slice(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#size = rest.length;
    this.#next = 0;
  }

  #magic(joined: Uint8Array<ArrayBuffer>): void {
    if (!BACKUP_MAGIC.every((b, i) => joined[i] === b)) {
      throw new BackupFormatError("This file is not a SPIKE backup");
    }
    const version = joined[BACKUP_MAGIC.length];
    if (version !== BACKUP_FORMAT) {
      throw new BackupFormatError(
        `This backup is in format ${version}, which this build does not read (it reads format ${BACKUP_FORMAT})`,
      );
    }
    this.#hash.update(joined.subarray(0, BACKUP_MAGIC.length + 1));
    this.#stage = "header";
  }

  /**
   * Declares the file complete.
   *
   * @throws {BackupFormatError} when it ended before its end frame
   */
  finish(): void {
    if (this.#stage === "magic") {
      throw new BackupFormatError("This file is not a SPIKE backup");
    }
    if (!this.#ended) {
      throw new BackupFormatError(
        "The backup is incomplete: it ends before its end frame (cut short or still being written)",
      );
    }
  }

  #expect(stage: Stage, what: string): void {
    if (this.#stage !== stage) {
      throw new BackupFormatError(`The backup has ${what} out of place`);
    }
  }

  #frame(type: number, payload: Uint8Array<ArrayBuffer>): BackupFrame {
    switch (type) {
      case TYPE.header:
        this.#expect("header", "a header");
        this.#stage = "keyring";
        return { type: "header", header: parseHeader(payload) };
      case TYPE.keyring:
        this.#expect("keyring", "a keyring");
        this.#stage = "rows";
        return { type: "keyring", keyring: payload };
      case TYPE.secret: {
        this.#expect("rows", "a secret");
        const secret = parseSecret(payload);
        this.#counts.secrets++;
        this.#counts.versions += secret.versions.length;
        return { type: "secret", secret };
      }
      case TYPE.policySet: {
        this.#expect("rows", "a policy set");
        const c = new Cursor(payload);
        return { type: "policySet", generation: c.u64(), record: c.rest() };
      }
      case TYPE.policy: {
        this.#expect("rows", "a policy");
        const c = new Cursor(payload);
        this.#counts.policies++;
        return { type: "policy", name: c.text16(), record: c.rest() };
      }
      case TYPE.end: {
        this.#expect("rows", "an end");
        const end = parseEnd(payload);
        const n = this.#counts;
        if (
          end.secrets !== n.secrets || end.versions !== n.versions ||
          end.policies !== n.policies
        ) {
          throw new BackupFormatError(
            `The backup says it holds ${end.secrets} secrets, ${end.versions} versions and ${end.policies} policies, but it has ${n.secrets}, ${n.versions} and ${n.policies}: rows were removed or added`,
          );
        }
        if (end.digest !== this.#digest!.toHex()) {
          throw new BackupFormatError(
            "The backup's checksum does not match its content: the file is damaged or was altered",
          );
        }
        this.#stage = "ended";
        return { type: "end", end };
      }
      default:
        throw new BackupFormatError("The backup has a frame of unknown type");
    }
  }
}
