// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The backup stream nexus sends: one consistent snapshot of the store,
 * taken while writes go on, in the backup file format (`lib/backup`),
 * ended by a MAC under the backup key of the root key the snapshot is
 * sealed for.
 *
 * @module
 */
import { verifyKeyCheck } from "../../../lib/crypto/kdf.ts";
import {
  type BackupHeader,
  backupMac,
  BackupWriter,
} from "../../../lib/backup/format.ts";
import { StoreError } from "../store/backend.ts";
import type { NexusStore } from "../store/open.ts";
import { keyId } from "../key_id.ts";

/** Bytes gathered before a chunk is sent. */
const CHUNK = 64 * 1024;

/** What a finished backup held. */
export interface BackupSummary {
  /** Secret paths. */
  secrets: number;
  /** Policies. */
  policies: number;
}

/**
 * The backup of `store`, produced as it is read. The snapshot is opened
 * when the first chunk is asked for and closed at the end (or when the
 * reader stops), so a backup that never starts holds nothing open.
 *
 * @param store an unlocked store
 * @param summary filled in as the backup is made
 * @returns the chunks of the backup file
 * @throws {StoreError} when the root key changed as the snapshot opened
 */
export async function* backupStream(
  store: NexusStore,
  summary: BackupSummary = { secrets: 0, policies: 0 },
): AsyncGenerator<Uint8Array> {
  // The keys first, then the snapshot: a rekey committed in between shows
  // as a key check the keys do not match.
  const keys = store.keys.keys;
  const rootKeyCreated = store.keys.status().rootKeyCreated;
  await using snapshot = await store.openSnapshot();
  const meta = snapshot.meta;
  if (!await verifyKeyCheck(keys, meta.keyCheck)) {
    throw new StoreError("The root key changed as the backup began; try again");
  }
  const header: BackupHeader = {
    format: "spike-backup",
    created: new Date().toISOString(),
    storeId: meta.storeId.toHex(),
    schema: meta.schemaVersion ?? 2,
    key: {
      id: await keyId(meta.storeId, meta.keyCheck),
      keyCheck: meta.keyCheck.toBase64(),
      threshold: meta.threshold,
      shares: meta.shareCount,
      commitments: meta.commitments.map((c) => c.toBase64()),
      created: rootKeyCreated,
    },
    backend: store.backend.kind,
  };
  const writer = new BackupWriter();
  let parts: Uint8Array[] = [
    writer.start(header),
    writer.keyring(snapshot.keyring),
  ];
  let size = parts[0]!.length + parts[1]!.length;
  for await (const row of snapshot.rows()) {
    const frame = row.kind === "secret"
      ? writer.secret(row.records)
      : row.kind === "policy"
      ? writer.policy(row.name, row.record)
      : writer.policySet(row.set.generation, row.set.record);
    if (row.kind === "secret") summary.secrets++;
    if (row.kind === "policy") summary.policies++;
    parts.push(frame);
    size += frame.length;
    if (size >= CHUNK) {
      yield join(parts, size);
      parts = [];
      size = 0;
    }
  }
  parts.push(await writer.end((digest) => backupMac(keys.backup, digest)));
  yield join(parts, size + parts[parts.length - 1]!.length);
}

function join(parts: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
