// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The backup file format: what the writer makes, the reader gives back in
// any chunking, and every kind of damage (cut, flipped, removed, reordered,
// appended) is refused with a sentence that quotes no content.
import assert from "node:assert/strict";
import {
  BACKUP_MAGIC,
  BackupFormatError,
  type BackupFrame,
  type BackupHeader,
  backupMac,
  BackupReader,
  BackupWriter,
  verifyBackupMac,
} from "../lib/backup/format.ts";

const HEADER: BackupHeader = {
  format: "spike-backup",
  created: "2026-12-01T00:00:00.000Z",
  storeId: "00112233445566778899aabbccddeeff",
  schema: 2,
  key: {
    id: "0123456789abcdef",
    keyCheck: new Uint8Array(32).fill(1).toBase64(),
    threshold: 2,
    shares: 3,
    commitments: [1, 2, 3].map((i) => new Uint8Array(32).fill(i).toBase64()),
    created: null,
  },
  backend: "sqlite",
};

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

async function macKey(): Promise<CryptoKey> {
  return await crypto.subtle.importKey(
    "raw",
    crypto.getRandomValues(new Uint8Array(32)),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** A backup of 40 secrets (some with versions), a policy set, 3 policies. */
async function sample(key: CryptoKey): Promise<Uint8Array> {
  const w = new BackupWriter();
  const parts = [w.start(HEADER), w.keyring(bytes(90, 7))];
  for (let i = 0; i < 40; i++) {
    parts.push(w.secret({
      path: `app/${String(i).padStart(2, "0")}`,
      revision: i + 1,
      head: bytes(60 + i, i),
      versions: Array.from({ length: i % 4 }, (_, v) => ({
        version: v + 1,
        record: bytes(30 + v, 200 + v),
      })),
    }));
  }
  parts.push(w.policySet(3, bytes(50, 9)));
  for (const name of ["a", "b", "c"]) parts.push(w.policy(name, bytes(40, 3)));
  parts.push(await w.end((digest) => backupMac(key, digest)));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function readAll(file: Uint8Array, chunk: number): {
  frames: BackupFrame[];
  reader: BackupReader;
} {
  const reader = new BackupReader();
  const frames: BackupFrame[] = [];
  for (let at = 0; at < file.length; at += chunk) {
    frames.push(...reader.push(file.subarray(at, at + chunk)));
  }
  reader.finish();
  return { frames, reader };
}

function refused(file: Uint8Array, pattern: RegExp): void {
  assert.throws(() => readAll(file, 1000), (e: unknown) => {
    assert.ok(e instanceof BackupFormatError, String(e));
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("a backup reads back frame for frame in any chunking, and its MAC verifies only with its key", async () => {
  const key = await macKey();
  const file = await sample(key);
  const whole = readAll(file, file.length);
  for (const chunk of [1, 7, 4096]) {
    assert.deepEqual(readAll(file, chunk).frames, whole.frames);
  }
  const types = whole.frames.map((f) => f.type);
  assert.deepEqual(types.slice(0, 2), ["header", "keyring"]);
  assert.equal(types.filter((t) => t === "secret").length, 40);
  assert.deepEqual(types.slice(-5), [
    "policySet",
    "policy",
    "policy",
    "policy",
    "end",
  ]);
  const header = whole.frames[0] as { header: BackupHeader };
  assert.deepEqual(header.header, HEADER);
  const secret = whole.frames[5] as Extract<BackupFrame, { type: "secret" }>;
  assert.equal(secret.secret.path, "app/03");
  assert.equal(secret.secret.revision, 4);
  assert.deepEqual(secret.secret.versions.map((v) => v.version), [1, 2, 3]);
  const end = whole.frames.at(-1) as Extract<BackupFrame, { type: "end" }>;
  assert.deepEqual(
    { s: end.end.secrets, v: end.end.versions, p: end.end.policies },
    { s: 40, v: 60, p: 3 },
  );
  const digest = whole.reader.digest!;
  const mac = Uint8Array.fromBase64(end.end.mac);
  assert.ok(await verifyBackupMac(key, digest, mac));
  assert.ok(!await verifyBackupMac(await macKey(), digest, mac));
});

Deno.test("a cut, flipped or appended-to backup is refused", async () => {
  const file = await sample(await macKey());
  for (const cut of [0, 5]) {
    refused(file.subarray(0, cut), /not a SPIKE backup/);
  }
  for (const cut of [9, 20, Math.floor(file.length / 2), file.length - 1]) {
    refused(file.subarray(0, cut), /incomplete|cut short/);
  }
  // Any flipped byte before the end frame: a header, a record, a length.
  const endAt = file.length - endFrameLength(file);
  for (const at of [3, 8, 40, 400, Math.floor(file.length / 2), endAt - 3]) {
    const flipped = file.slice();
    flipped[at]! ^= 0x10;
    assert.throws(() => readAll(flipped, 512), BackupFormatError, `byte ${at}`);
  }
  const appended = new Uint8Array(file.length + 1);
  appended.set(file);
  refused(appended, /after its end/);
  refused(
    new TextEncoder().encode("SQLite format 3\0..."),
    /not a SPIKE backup/,
  );
  const future = file.slice();
  future[BACKUP_MAGIC.length] = 9;
  refused(future, /format 9/);
});

Deno.test("a changed end frame passes the checksum but not the MAC", async () => {
  const key = await macKey();
  const file = await sample(key);
  const { frames, reader } = readAll(file, 4096);
  const end = (frames.at(-1) as Extract<BackupFrame, { type: "end" }>).end;
  const mac = Uint8Array.fromBase64(end.mac);
  mac[0]! ^= 1;
  assert.ok(!await verifyBackupMac(key, reader.digest!, mac));
});

Deno.test("frames removed or out of place are refused, even with the counts made to fit", async () => {
  const key = await macKey();
  const secret = { path: "a", revision: 1, head: bytes(40, 1), versions: [] };
  // A policy before the keyring.
  const early = new BackupWriter();
  refused(
    concat(early.start(HEADER), early.policy("p", bytes(9, 1))),
    /out of place/,
  );
  // The end claims one secret but its row was dropped, or doubled.
  const w = new BackupWriter();
  const start = w.start(HEADER);
  const keyring = w.keyring(bytes(10, 2));
  const row = w.secret(secret);
  const end = await w.end((d) => backupMac(key, d));
  refused(concat(start, keyring, end), /holds 1 secrets.*has 0/);
  refused(concat(start, keyring, row, row, end), /holds 1 secrets.*has 2/);
  // Another row in place of the dropped one, with the same counts: the
  // checksum tells.
  const other = new BackupWriter().secret({ ...secret, path: "b" });
  refused(concat(start, keyring, other, end), /checksum/);
  // A frame of unknown type.
  const unknown = new Uint8Array([0x5a, 0, 0, 0, 0]);
  refused(concat(start, keyring, unknown, row, end), /unknown type/);
});

// The length of the last frame (the end): its JSON runs to the file's end.
function endFrameLength(file: Uint8Array): number {
  for (let at = file.length - 5; at > 0; at--) {
    const length = new DataView(file.buffer, file.byteOffset + at + 1, 4)
      .getUint32(0);
    if (file[at] === 0x45 && at + 5 + length === file.length) {
      return 5 + length;
    }
  }
  throw new Error("No end frame");
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
