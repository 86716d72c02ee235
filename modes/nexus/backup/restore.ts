// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike nexus restore-backup FILE`: the offline half of a restore. Reads a
 * backup, checks it whole (format, order, counts, checksum), and writes it
 * as a new store into an empty or absent `SPIKE_NEXUS_DATA_DIR`, refusing
 * anything else. The store is written under a temporary name and renamed
 * into place only once the whole file checked out, so a failed or killed
 * restore leaves no store behind. With the postgres backend the target is
 * an empty schema, written in one transaction (replicas stopped).
 *
 * Nexus then starts as usual on that folder and unlocks the store with its
 * keepers, if they hold shards of the backup's root key, or with that key's
 * recovery shards; at the first unlock it checks the backup's MAC under the
 * key (a file altered without the key does not unlock) and starts a new
 * data-key term.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  BackupFormatError,
  type BackupFrame,
  type BackupHeader,
  BackupReader,
} from "../../../lib/backup/format.ts";
import { ConfigError, envString } from "../../../lib/config/env.ts";
import { openSvidSource } from "../../../lib/spiffe/open_source.ts";
import type { SvidSource } from "../../../lib/spiffe/source.ts";
import { ApiError } from "../../../lib/wire/errors.ts";
import {
  assertStoreMeta,
  SCHEMA_VERSION,
  type SnapshotRow,
  type StoreBackend,
  StoreError,
  type StoreMeta,
} from "../store/backend.ts";
import { PostgresBackend } from "../store/postgres_backend.ts";
import { poolSettings } from "../ha/replication.ts";
import { readReplicaConfig, type ReplicaConfig } from "../ha/replica_config.ts";
import { prepareDataDir, resolveDataDir } from "../store/data_dir.ts";
import { DB_FILE_NAME, SqliteBackend } from "../store/sqlite_backend.ts";
import { keyId } from "../key_id.ts";

const HELP = `spike nexus restore-backup: write a backup into a new, empty store

Usage:
  spike nexus restore-backup FILE

Checks FILE (made by "spike pilot operator backup") and writes it as the
store of SPIKE_NEXUS_DATA_DIR (default ~/.spike/data), which must be empty
or absent; with SPIKE_NEXUS_BACKEND_STORE=postgres, into the empty schema
SPIKE_NEXUS_DATABASE_URL names. Nexus must not be running on that store. Then start nexus as
usual: it unlocks the store from keepers that hold shards of the backup's
root key, or with that key's recovery shards (spike pilot operator
restore). The key id printed here tells which key that is; check recovery
files against it with "spike pilot operator drill" once nexus runs.`;

/** The temporary name of a store being restored. */
const TEMP_NAME = ".spike.db.restoring";
const READ_CHUNK = 256 * 1024;

/** Raised for a restore that must not go on; the message says why. */
class RestoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RestoreError";
  }
}

async function* fileFrames(
  file: Deno.FsFile,
  reader: BackupReader,
): AsyncGenerator<BackupFrame> {
  for (;;) {
    const buffer = new Uint8Array(READ_CHUNK);
    const n = await file.read(buffer);
    if (n === null) break;
    yield* reader.push(buffer.subarray(0, n));
  }
  reader.finish();
}

function metaOf(header: BackupHeader): StoreMeta {
  try {
    const meta: StoreMeta = {
      storeId: Uint8Array.fromHex(header.storeId),
      keyCheck: Uint8Array.fromBase64(header.key.keyCheck),
      threshold: header.key.threshold,
      shareCount: header.key.shares,
      commitments: header.key.commitments.map((c) => Uint8Array.fromBase64(c)),
    };
    assertStoreMeta(meta);
    return meta;
  } catch (e) {
    throw new BackupFormatError(
      `The backup header's key is malformed: ${(e as Error).message}`,
    );
  }
}

// The folder must hold nothing but what an interrupted restore left.
async function checkEmpty(dir: string): Promise<"absent" | "empty"> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "absent";
    if (e instanceof Deno.errors.NotADirectory) {
      throw new RestoreError(`${dir} exists and is not a folder`);
    }
    throw e;
  }
  const others = entries.filter((e) => !e.name.startsWith(TEMP_NAME));
  if (others.length > 0) {
    throw new RestoreError(
      `The data folder ${dir} is not empty (it holds ${
        others.map((e) => e.name).slice(0, 3).join(", ")
      }${
        others.length > 3 ? ", …" : ""
      }): restore-backup writes only into an empty or absent folder; move its content away, or set SPIKE_NEXUS_DATA_DIR to a new folder`,
    );
  }
  for (const e of entries) await Deno.remove(join(dir, e.name));
  return "empty";
}

async function removeTemp(dir: string): Promise<void> {
  for (const suffix of ["", "-wal", "-shm", "-journal"]) {
    await Deno.remove(join(dir, TEMP_NAME + suffix)).catch(() => {});
  }
}

async function syncFolder(dir: string): Promise<void> {
  using folder = await Deno.open(dir, { read: true });
  await folder.sync();
}

/**
 * Runs `spike nexus restore-backup`.
 *
 * @param args the arguments after `restore-backup`
 * @returns the exit code: 0 restored, 1 refused or failed, 2 usage
 */
export async function restoreBackup(args: string[]): Promise<number> {
  let file: string;
  try {
    const parsed = parseArgs({
      args,
      options: { help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    if (parsed.values.help) {
      console.log(HELP);
      return 0;
    }
    if (parsed.positionals.length !== 1) throw new Error("one file");
    file = parsed.positionals[0]!;
  } catch {
    console.error(
      'Usage: spike nexus restore-backup FILE (see "spike nexus restore-backup --help")',
    );
    return 2;
  }
  let target: Target;
  try {
    const backend = envString("SPIKE_NEXUS_BACKEND_STORE", "sqlite")
      .toLowerCase();
    if (backend === "sqlite") {
      target = sqliteTarget(resolveDataDir());
    } else if (backend === "postgres") {
      target = postgresTarget(readReplicaConfig());
    } else {
      throw new ConfigError(
        `restore-backup writes a SQLite or PostgreSQL store, but SPIKE_NEXUS_BACKEND_STORE is "${backend}"`,
      );
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
  try {
    const summary = await restoreInto(file, target);
    console.log(summary);
    return 0;
  } catch (e) {
    if (
      e instanceof RestoreError || e instanceof BackupFormatError ||
      e instanceof StoreError
    ) {
      console.error(`Restore refused: ${e.message}; nothing was written`);
      return 1;
    }
    if (e instanceof Deno.errors.NotFound) {
      console.error(`Restore refused: no such file ${file}`);
      return 1;
    }
    if (e instanceof ApiError) {
      console.error(`Restore failed: ${e.message}; nothing was written`);
      return 1;
    }
    throw e;
  }
}

/** Where a backup is written, and how. */
interface Target {
  /** The store, for the summary. */
  readonly where: string;
  /** Checks it is empty and opens it for the import. */
  open(): Promise<StoreBackend>;
  /** After a whole import: moves the store into place. */
  finish(backend: StoreBackend): Promise<void>;
  /** After a failure: leaves things as they were before. */
  undo(backend: StoreBackend | undefined): Promise<void>;
}

// An empty or absent data folder; the store is written under a temporary
// name and renamed into place when whole.
function sqliteTarget(dir: string): Target {
  let was: "absent" | "empty" = "absent";
  return {
    where: dir,
    async open() {
      was = await checkEmpty(dir);
      prepareDataDir(dir);
      return SqliteBackend.open(dir, { fileName: TEMP_NAME });
    },
    async finish(backend) {
      await backend.close();
      await Deno.rename(join(dir, TEMP_NAME), join(dir, DB_FILE_NAME));
      await syncFolder(dir);
    },
    async undo(backend) {
      await backend?.close();
      await removeTemp(dir);
      if (was === "absent") await Deno.remove(dir).catch(() => {});
    },
  };
}

// An empty database schema; the import is one transaction, which
// refuses a schema that holds a store.
function postgresTarget(config: ReplicaConfig): Target {
  let source: SvidSource | undefined;
  const db = config.database;
  return {
    where: `postgres://${db.user}@${db.host}:${db.port}/${db.database}`,
    async open() {
      // The SVID is the client certificate when the URL asks for it.
      source = await openSvidSource({ watch: false });
      return await PostgresBackend.open(poolSettings(config, source));
    },
    async finish(backend) {
      await backend.close();
      source?.close();
    },
    async undo(backend) {
      await backend?.close();
      source?.close();
    },
  };
}

// The rows of the frames after the keyring, counted; the end frame's MAC
// goes into `ending`.
async function* rowsOf(
  frames: AsyncIterable<BackupFrame>,
  counts: { secrets: number; versions: number; policies: number },
  ending: { mac?: Uint8Array<ArrayBuffer> },
): AsyncGenerator<SnapshotRow> {
  for await (const frame of frames) {
    switch (frame.type) {
      case "secret":
        counts.secrets++;
        counts.versions += frame.secret.versions.length;
        yield { kind: "secret", records: frame.secret };
        break;
      case "policySet":
        yield {
          kind: "policySet",
          set: { generation: frame.generation, record: frame.record },
        };
        break;
      case "policy":
        counts.policies++;
        yield { kind: "policy", name: frame.name, record: frame.record };
        break;
      case "end":
        ending.mac = Uint8Array.fromBase64(frame.end.mac);
        break;
      default:
        throw new BackupFormatError("The backup has a frame out of place");
    }
  }
}

async function restoreInto(path: string, target: Target): Promise<string> {
  using file = await Deno.open(path, { read: true });
  if (!(await file.stat()).isFile) {
    throw new RestoreError(`${path} is not a file`);
  }
  const reader = new BackupReader();
  const frames = fileFrames(file, reader);
  let backend: StoreBackend | undefined;
  let header: BackupHeader | undefined;
  const counts = { secrets: 0, versions: 0, policies: 0 };
  try {
    const first = await frames.next();
    if (first.done || first.value.type !== "header") {
      throw new BackupFormatError("The backup has no header");
    }
    header = first.value.header;
    if (header.schema !== SCHEMA_VERSION) {
      throw new RestoreError(
        `The backup holds store schema ${header.schema}; this build writes schema ${SCHEMA_VERSION}${
          header.schema > SCHEMA_VERSION
            ? ": restore it with a newer SPIKE"
            : ""
        }`,
      );
    }
    const meta = metaOf(header);
    if (await keyId(meta.storeId, meta.keyCheck) !== header.key.id) {
      throw new BackupFormatError(
        "The backup header's key id does not match its key check",
      );
    }
    const second = await frames.next();
    if (second.done || second.value.type !== "keyring") {
      throw new BackupFormatError("The backup has no keyring");
    }
    const ending: { mac?: Uint8Array<ArrayBuffer> } = {};
    backend = await target.open();
    await backend.importStore({
      meta,
      keyring: second.value.keyring,
      rows: rowsOf(frames, counts, ending),
      check: () => {
        if (!ending.mac || !reader.digest) {
          return Promise.reject(new BackupFormatError("The backup has no end"));
        }
        return Promise.resolve({ digest: reader.digest, mac: ending.mac });
      },
    });
    await target.finish(backend);
  } catch (e) {
    await target.undo(backend);
    if (
      e instanceof Error && /UNIQUE constraint|duplicate key/.test(e.message)
    ) {
      throw new BackupFormatError(
        "The backup holds a row twice: it was altered",
      );
    }
    throw e;
  }
  const key = header.key;
  return [
    `Restored the backup of store ${header.storeId}, taken ${header.created}: ${counts.secrets} secrets (${counts.versions} older versions), ${counts.policies} policies, into ${target.where}.`,
    "",
    `It needs root key ${key.id} (${key.threshold} of ${key.shares} shards). Start nexus on this store:`,
    "it unlocks the store from keepers that hold shards of that key, or, when they hold",
    "another key's shards (the key was rekeyed since, or they serve another store), with",
    "the recovery shards exported for that key: spike pilot operator restore (role restore).",
    "Check recovery files first with spike pilot operator drill.",
  ].join("\n");
}
