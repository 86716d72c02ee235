// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Nexus's copy of what the store digest covers: every secret path's
 * revision and the policy set's generation (`store_digest.ts`). Built from
 * one snapshot of the store at unlock and checked against the integrity
 * row there, then kept in step by the backend: every write transaction
 * calls it and rolls it back with itself. Reads compare what they read
 * with it, so a head or policy set put back older while nexus runs is an
 * integrity error on the next read.
 *
 * It holds every path with its revision, by digest bucket (a few MB at
 * 100,000 paths): the price of checking freshness per read without
 * another row read.
 *
 * @module
 */
import type { HmacSha256 } from "../../../lib/crypto/sha256.ts";
import type { IntegritySnapshot, WriteLedger } from "./backend.ts";
import { IntegrityError } from "./integrity.ts";
import { lowerBound } from "./key_listing.ts";
import {
  bucketMac,
  bucketOf,
  DIGEST_BUCKETS,
  DIGEST_BYTES,
  integrityMac,
  type IntegrityRow,
  policySetMac,
  sameBytes,
  xorInto,
} from "./store_digest.ts";

/** The integrity row a transaction stores. */
export interface IntegrityUpdate {
  /** The row to store. */
  readonly row: IntegrityRow;
  /** The MAC of the row it replaces: the compare-and-set token. */
  readonly replaces: Uint8Array<ArrayBuffer>;
}

/** What reads compare with: the revisions nexus wrote last. */
export interface WrittenRevisions {
  /** The revision nexus wrote last for a path, 0 when never. */
  revisionOf(path: string): number;
  /** The policy set's generation nexus wrote last, 0 when never. */
  readonly policyGeneration: number;
}

/** A path whose stored revision is not the one nexus wrote. */
export interface RevisionMismatch {
  /** The path. */
  readonly path: string;
  /** Its revision in the store, 0 when its head row is missing. */
  readonly stored: number;
  /** The revision nexus wrote, 0 when nexus never wrote the path. */
  readonly written: number;
}

/** The integrity ledger. */
export class IntegrityLedger implements WriteLedger, WrittenRevisions {
  readonly #key: HmacSha256;
  readonly #storeId: Uint8Array;
  #epoch: number;
  #generation = 0;
  #digest = new Uint8Array(DIGEST_BYTES);
  // The MAC of the row as stored; the one a transaction is about to store.
  #mac: Uint8Array<ArrayBuffer>;
  #sealing: Uint8Array<ArrayBuffer> | undefined;
  #policyGeneration: number;
  // Paths per bucket, by code point ascending, and their revisions.
  readonly #paths: string[][] = Array.from(
    { length: DIGEST_BUCKETS },
    () => [],
  );
  readonly #revisions: number[][] = Array.from(
    { length: DIGEST_BUCKETS },
    () => [],
  );
  #size = 0;
  readonly #bucketMacs: (Uint8Array<ArrayBuffer> | undefined)[] = [];
  #undo: (() => void)[] = [];
  #committed = 0;
  // The newest committed row known to be on disk: what a checkpoint names,
  // so a keeper never holds a generation a power loss could take back.
  #onDisk: IntegrityRow;
  readonly #listeners: ((row: IntegrityRow) => void)[] = [];

  /**
   * Builds the ledger of a snapshot: every bucket hashed once.
   *
   * @param key the integrity key
   * @param storeId the store id the row's MAC binds
   * @param snapshot the store's paths, revisions and policy generation
   * @param epoch the epoch of the row this ledger writes
   */
  constructor(
    key: HmacSha256,
    storeId: Uint8Array,
    snapshot: IntegritySnapshot,
    epoch: number,
  ) {
    this.#key = key;
    this.#storeId = storeId;
    this.#epoch = epoch;
    const { paths, revisions } = snapshot;
    for (let i = 0; i < paths.length; i++) {
      // Paths arrive in code point order, so each bucket stays sorted.
      const bucket = bucketOf(paths[i]!);
      this.#paths[bucket]!.push(paths[i]!);
      this.#revisions[bucket]!.push(revisions[i]!);
      this.#generation += revisions[i]!;
    }
    this.#size = paths.length;
    for (let b = 0; b < DIGEST_BUCKETS; b++) {
      const mac = this.#macOf(b);
      this.#bucketMacs[b] = mac;
      if (mac) xorInto(this.#digest, mac);
    }
    this.#policyGeneration = snapshot.policyGeneration;
    this.#generation += snapshot.policyGeneration;
    xorInto(this.#digest, policySetMac(key, snapshot.policyGeneration));
    this.#mac = this.#sign();
    this.#committed = this.#generation;
    this.#onDisk = this.row;
  }

  /** The integrity row as stored (outside a write transaction). */
  get row(): IntegrityRow {
    return {
      epoch: this.#epoch,
      generation: this.#generation,
      digest: this.#digest.slice(),
      mac: this.#mac.slice(),
    };
  }

  /** The policy set's generation that nexus wrote last (0: none). */
  get policyGeneration(): number {
    return this.#policyGeneration;
  }

  /**
   * The revision nexus wrote last for a path.
   *
   * @param path the path
   * @returns the revision, 0 when nexus never wrote it
   */
  revisionOf(path: string): number {
    const bucket = bucketOf(path);
    const at = this.#find(bucket, path);
    return at < 0 ? 0 : this.#revisions[bucket]![at]!;
  }

  // The index of `path` in its bucket, or -1.
  #find(bucket: number, path: string): number {
    const paths = this.#paths[bucket]!;
    const at = lowerBound(paths, path, false);
    return paths[at] === path ? at : -1;
  }

  /**
   * Why a stored integrity row does not match this ledger (built from the
   * same snapshot), in one sentence for the operator.
   *
   * @param stored the row the store holds
   * @returns undefined when it matches
   */
  mismatch(stored: IntegrityRow): string | undefined {
    const recomputed = integrityMac(this.#key, this.#storeId, stored);
    if (!sameBytes(recomputed, stored.mac)) {
      return "The store's integrity row does not verify with this store's key: it was altered or copied from another store";
    }
    if (stored.generation !== this.#generation) {
      return `The store's secret heads and policy set add up to ${this.#generation} writes, but its integrity row was sealed at ${stored.generation}: heads or the policy set were ${
        this.#generation < stored.generation
          ? "rolled back or removed"
          : "altered"
      } while nexus was not running`;
    }
    if (!sameBytes(stored.digest, this.#digest)) {
      return "The store's secret heads or policy set differ from what its integrity row seals: a head was rolled back, removed or added, or the policy set was rolled back, while nexus was not running";
    }
    return undefined;
  }

  /**
   * The paths of a snapshot whose revision differs from what nexus wrote,
   * and whether the policy generation does.
   *
   * @param snapshot a snapshot taken while no write was in flight
   * @returns the differences, by path
   */
  differences(
    snapshot: IntegritySnapshot,
  ): { paths: RevisionMismatch[]; policyGeneration: number | undefined } {
    const paths: RevisionMismatch[] = [];
    let known = 0;
    snapshot.paths.forEach((path, i) => {
      const stored = snapshot.revisions[i]!;
      const written = this.revisionOf(path);
      if (written > 0) known += 1;
      if (stored !== written) paths.push({ path, stored, written });
    });
    if (known < this.#size) {
      const stored = new Set(snapshot.paths);
      this.#paths.forEach((bucket, b) =>
        bucket.forEach((path, i) => {
          if (!stored.has(path)) {
            paths.push({ path, stored: 0, written: this.#revisions[b]![i]! });
          }
        })
      );
    }
    return {
      paths,
      policyGeneration: snapshot.policyGeneration === this.#policyGeneration
        ? undefined
        : snapshot.policyGeneration,
    };
  }

  /** The newest committed integrity row that is on disk. */
  get durableRow(): IntegrityRow {
    return { ...this.#onDisk };
  }

  /**
   * Calls `listener` after each commit that wrote something, and after
   * each write logged for folding.
   *
   * @param listener gets the committed row
   */
  onCommit(listener: (row: IntegrityRow) => void): void {
    this.#listeners.push(listener);
  }

  /** See {@linkcode WriteLedger.secretWritten}. */
  secretWritten(path: string, from: number, to: number): void {
    const known = this.revisionOf(path);
    if (known !== from || to !== from + 1) {
      throw new IntegrityError(
        `Secret "${path}" was at revision ${from} in the store, but nexus last wrote revision ${known}: the store was changed underneath nexus`,
      );
    }
    const bucket = bucketOf(path);
    const paths = this.#paths[bucket]!;
    const revisions = this.#revisions[bucket]!;
    const at = lowerBound(paths, path, false);
    if (from === 0) {
      paths.splice(at, 0, path);
      revisions.splice(at, 0, to);
      this.#size += 1;
    } else revisions[at] = to;
    const previous = this.#bucketMacs[bucket];
    const next = this.#macOf(bucket);
    this.#bucketMacs[bucket] = next;
    this.#step(previous, next, () => {
      this.#bucketMacs[bucket] = previous;
      if (from === 0) {
        paths.splice(at, 1);
        revisions.splice(at, 1);
        this.#size -= 1;
      } else revisions[at] = from;
    });
  }

  /** See {@linkcode WriteLedger.policyWritten}. */
  policyWritten(from: number, to: number): void {
    if (this.#policyGeneration !== from || to !== from + 1) {
      throw new IntegrityError(
        `The policy set was at generation ${from} in the store, but nexus last wrote generation ${this.#policyGeneration}: the store was changed underneath nexus`,
      );
    }
    this.#policyGeneration = to;
    this.#step(
      policySetMac(this.#key, from),
      policySetMac(this.#key, to),
      () => this.#policyGeneration = from,
    );
  }

  /** See {@linkcode WriteLedger.mark}. */
  mark(): number {
    return this.#undo.length;
  }

  /** See {@linkcode WriteLedger.rollbackTo}. */
  rollbackTo(mark: number): void {
    while (this.#undo.length > mark) this.#undo.pop()!();
    this.#sealing = undefined;
  }

  /** See {@linkcode WriteLedger.seal}. */
  seal(): IntegrityUpdate | undefined {
    if (this.#generation === this.#committed) return undefined;
    // Once per transaction, not per write: a batch of writes shares one.
    this.#sealing = this.#sign();
    return {
      row: {
        epoch: this.#epoch,
        generation: this.#generation,
        digest: this.#digest.slice(),
        mac: this.#sealing.slice(),
      },
      replaces: this.#mac.slice(),
    };
  }

  /** See {@linkcode WriteLedger.commit}. */
  commit(onDisk = true): void {
    this.#undo = [];
    if (this.#sealing) this.#mac = this.#sealing;
    this.#sealing = undefined;
    if (this.#generation === this.#committed) return;
    this.#committed = this.#generation;
    if (onDisk) this.synced(this.row);
  }

  /** See {@linkcode WriteLedger.synced}. */
  synced(row: IntegrityRow): void {
    if (row.generation <= this.#onDisk.generation) return;
    this.#onDisk = row;
    for (const listener of this.#listeners) listener(row);
  }

  /** See {@linkcode WriteLedger.logged}. */
  logged(): void {
    const row = this.row;
    for (const listener of this.#listeners) listener(row);
  }

  // Moves the digest past one write: `removed` out, `added` in, one more
  // write. `undo` restores what the caller changed; the rest is restored
  // here. The row's MAC waits for the end of the transaction (seal).
  #step(
    removed: Uint8Array | undefined,
    added: Uint8Array | undefined,
    undo: () => void,
  ): void {
    const digest = this.#digest.slice();
    if (removed) xorInto(this.#digest, removed);
    if (added) xorInto(this.#digest, added);
    this.#generation += 1;
    this.#undo.push(() => {
      undo();
      this.#digest = digest;
      this.#generation -= 1;
    });
  }

  #macOf(bucket: number): Uint8Array<ArrayBuffer> | undefined {
    const paths = this.#paths[bucket]!;
    if (paths.length === 0) return undefined;
    return bucketMac(this.#key, bucket, paths, this.#revisions[bucket]!);
  }

  #sign(): Uint8Array<ArrayBuffer> {
    return integrityMac(this.#key, this.#storeId, {
      epoch: this.#epoch,
      generation: this.#generation,
      digest: this.#digest,
    });
  }
}
