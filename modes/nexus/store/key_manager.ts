// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The unlocked keyring and its nonce budget. Every record and every cipher
 * ciphertext is AES-256-GCM with a random 96-bit nonce, which NIST SP
 * 800-38D allows for at most 2^32 encryptions per key. So every key counts
 * its encryptions, and a data-key term that reaches its budget gives way to
 * a new term (the cipher-API key, which cannot rotate, stops encrypting).
 *
 * The count is kept crash-safe without a write per encryption: nexus
 * reserves blocks of encryptions ahead in the sealed keyring (one keyring
 * write per block) and counts within the block in memory. After a crash
 * the count resumes at the end of the last reserved block, never below the
 * encryptions made, so a crash can waste at most one block of the budget
 * and never reuses a count. Several replicas sharing one store reserve
 * disjoint blocks of the same budget, each by a compare-and-set of the
 * keyring.
 *
 * A term also gives way at an age (`SPIKE_NEXUS_KEY_ROTATION_PERIOD`), or
 * when an operator asks (`spike pilot operator rotate`).
 *
 * @module
 */
import type { PurposeKeys } from "../../../lib/crypto/kdf.ts";
import type { Logger } from "../../../lib/log.ts";
import { MAX_TIMER_MS } from "../../../lib/config/env.ts";
import { ApiError, ErrorCode } from "../../../lib/wire/errors.ts";
import type { PendingRootKey, Sealed, StoreBackend } from "./backend.ts";
import { StoreError } from "./backend.ts";
import {
  type Keyring,
  type KeyringDocument,
  openKeyring,
  type ReencryptProgress,
  rewrapKeyring,
  sealKeyring,
  withNewTerm,
} from "./keyring.ts";
import type { DataKeys, SealKey } from "./record_cipher.ts";

/**
 * AES-GCM encryptions allowed per key by default: 90 % of 2^32, the NIST
 * SP 800-38D bound for random nonces (Vault rotates at the same count).
 */
export const DEFAULT_MAX_ENCRYPTIONS = 3_865_470_566;

/** The largest block of encryptions reserved by one keyring write. */
const MAX_BLOCK = 2 ** 20;
/** The room a rekey keeps while it holds keyring writes back. */
const MAX_REKEY_ROOM = 2 ** 24;
/** How many times a keyring write is retried when another writer was first. */
const WRITE_ATTEMPTS = 16;

/** Limits of the keys. */
export interface KeyLimits {
  /** Encryptions per key; a term that reaches it rotates. */
  readonly maxEncryptions: number;
  /** Age after which the active term rotates; undefined: never. */
  readonly rotationPeriodMs?: number | undefined;
}

/** A data-key term as status shows it. */
export interface TermStatus {
  /** The term. */
  readonly term: number;
  /** When it was made, if known. */
  readonly created: string | null;
  /**
   * Encryptions counted: an upper bound (whole reserved blocks), or null
   * for a term made before counts were kept.
   */
  readonly encryptions: number | null;
}

/** What status reports about the keys. */
export interface KeyStatus {
  /** When the root key was made, if known. */
  readonly rootKeyCreated: string | null;
  /** When recovery shards of the root key were last exported. */
  readonly recoveryExported: string | null;
  /** The term new records are sealed with. */
  readonly activeTerm: number;
  /** Every term the keyring holds. */
  readonly terms: readonly TermStatus[];
  /** Encryptions counted for the cipher-API key. */
  readonly cipherEncryptions: number;
  /** Encryptions allowed per key. */
  readonly maxEncryptions: number;
  /** The rotation period, ms, or null. */
  readonly rotationPeriodMs: number | null;
  /** A re-encryption in progress, or null. */
  readonly reencrypt: ReencryptProgress | null;
}

/** Encryptions granted to this process: `next` up to, not including, `end`. */
interface Grant {
  readonly term: number;
  next: number;
  end: number;
}

/** A rekey between its prepare and its commit or abort. */
export interface RekeyWindow {
  /** Makes the pending key the store's key; keyring writes resume. */
  commit(): Promise<void>;
  /** Drops the pending key; keyring writes resume. */
  abort(): Promise<void>;
}

function blockOf(limit: number): number {
  return Math.max(1, Math.min(MAX_BLOCK, Math.floor(limit / 16)));
}

function now(): string {
  return new Date().toISOString();
}

/** The keyring of an unlocked store, its budget and its writes. */
export class KeyManager implements DataKeys {
  readonly #backend: StoreBackend;
  readonly #limits: KeyLimits;
  readonly #log: Logger | undefined;
  readonly #block: number;
  #keys: PurposeKeys;
  #keyring: Keyring;
  #grant: Grant | undefined;
  #cipherGrant: Grant | undefined;
  #reserving: Promise<void> | undefined;
  #cipherReserving: Promise<void> | undefined;
  // Keyring writes run one at a time; a rekey holds the line open.
  #line: Promise<unknown> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  private constructor(
    backend: StoreBackend,
    keys: PurposeKeys,
    keyring: Keyring,
    limits: KeyLimits,
    log: Logger | undefined,
  ) {
    this.#backend = backend;
    this.#keys = keys;
    this.#keyring = keyring;
    this.#limits = limits;
    this.#log = log;
    this.#block = blockOf(limits.maxEncryptions);
  }

  /**
   * Opens a stored keyring. Nothing is reserved until the first
   * encryption; an age rotation is scheduled when a period is set.
   *
   * @param backend the store's backend
   * @param keys the purpose keys of the root key
   * @param sealed the stored keyring
   * @param limits the budget and the rotation period
   * @param log where rotations are reported
   * @returns the manager
   */
  static async open(
    backend: StoreBackend,
    keys: PurposeKeys,
    sealed: Sealed,
    limits: KeyLimits,
    log?: Logger,
  ): Promise<KeyManager> {
    const keyring = await openKeyring(keys.keyring, sealed);
    const manager = new KeyManager(backend, keys, keyring, limits, log);
    manager.#schedule();
    return manager;
  }

  /** The keyring as last read or written. */
  get keyring(): Keyring {
    return this.#keyring;
  }

  /** The purpose keys of the root key in use. */
  get keys(): PurposeKeys {
    return this.#keys;
  }

  /** See {@linkcode DataKeys.sealKey}. */
  sealKey(): SealKey | Promise<SealKey> {
    const g = this.#grant;
    const keyring = this.#keyring;
    if (g && g.term === keyring.activeTerm && g.next < g.end) {
      g.next++;
      if (g.end - g.next < this.#block / 2) this.#reserveData(false);
      return { term: g.term, key: keyring.activeKey };
    }
    return this.#sealKeySlow();
  }

  async #sealKeySlow(): Promise<SealKey> {
    for (;;) {
      await this.#reserveData(true);
      const g = this.#grant;
      if (g && g.term === this.#keyring.activeTerm && g.next < g.end) {
        g.next++;
        return { term: g.term, key: this.#keyring.activeKey };
      }
    }
  }

  /** See {@linkcode DataKeys.openKey}. */
  openKey(
    term: number,
  ): CryptoKey | undefined | Promise<CryptoKey | undefined> {
    return this.#keyring.dataKey(term) ?? this.#reloadFor(term);
  }

  /**
   * Reads the keyring again (replicas: another one may have rotated, so
   * this one seals with the new term from its next encryption on).
   */
  refresh(): Promise<void> {
    return this.#enqueue(() => this.#reload());
  }

  // A record of a term this keyring does not hold yet: another replica
  // rotated. Read the keyring again, once.
  async #reloadFor(term: number): Promise<CryptoKey | undefined> {
    await this.#enqueue(() => this.#reload());
    return this.#keyring.dataKey(term);
  }

  /**
   * The cipher-API key for one encryption, counted against its budget.
   *
   * @returns the key
   * @throws {ApiError} once the key has made its allowed encryptions: the
   *   cipher-API key cannot rotate (its ciphertexts name no key), so it
   *   stops encrypting; decryption goes on
   */
  cipherSealKey(): CryptoKey | Promise<CryptoKey> {
    const g = this.#cipherGrant;
    if (g && g.next < g.end) {
      g.next++;
      if (g.end - g.next < this.#block / 2) this.#reserveCipher(false);
      return this.#keyring.cipherKey;
    }
    return this.#cipherSlow();
  }

  async #cipherSlow(): Promise<CryptoKey> {
    for (;;) {
      await this.#reserveCipher(true);
      const g = this.#cipherGrant;
      if (g && g.next < g.end) {
        g.next++;
        return this.#keyring.cipherKey;
      }
    }
  }

  // One reservation at a time; `wait` callers get its failure, a
  // prefetch only logs it (the next encryption tries again).
  #reserveData(wait: boolean): Promise<void> {
    this.#reserving ??= this.#update(async (doc) => {
      const entry = doc.terms.find((t) => t.term === doc.active)!;
      const start = entry.reserved;
      const room = start === undefined
        ? 0
        : this.#limits.maxEncryptions - start;
      if (room <= 0) {
        // The term's budget is spent, or its count is unknown (a keyring
        // from before counts were kept): a new term takes over.
        await this.#refuseDuringRekey();
        const next = await withNewTerm(
          this.#keys.keyring,
          doc,
          now(),
          this.#block,
        );
        return {
          document: next,
          done: () => {
            this.#grant = { term: next.active, next: 0, end: this.#block };
            this.#log?.warn(
              start === undefined
                ? "Data keys: the active term had no encryption count; sealing with a new term"
                : "Data keys: the active term reached its encryption budget; sealing with a new term",
              { term: next.active, previous: doc.active },
            );
          },
        };
      }
      const size = Math.min(this.#block, room);
      return {
        document: withReserved(doc, doc.active, start! + size),
        done: () => this.#extend(doc.active, start!, start! + size),
      };
    }).finally(() => this.#reserving = undefined);
    const pending = this.#reserving;
    if (wait) return pending;
    pending.catch((e) =>
      this.#log?.warn("Data keys: reserving encryptions failed", {
        error: (e as Error).message,
      })
    );
    return Promise.resolve();
  }

  // A new term made while another replica's rekey waits to commit would
  // be missing from the keyring that commit writes: wait for the rekey.
  async #refuseDuringRekey(): Promise<void> {
    if ((await this.#backend.readMeta())?.pending) {
      throw new StoreError(
        "A rekey is in progress: a new data-key term waits until it ends; try again",
      );
    }
  }

  #extend(term: number, start: number, end: number): void {
    const g = this.#grant;
    // Contiguous with what this process holds: one longer block. Otherwise
    // (another replica reserved in between) the rest of the old block is
    // given up: counts only ever go up.
    if (g && g.term === term && g.end === start) g.end = end;
    else this.#grant = { term, next: start, end };
  }

  #reserveCipher(wait: boolean): Promise<void> {
    this.#cipherReserving ??= this.#update((doc) => {
      const start = doc.cipherReserved;
      const room = this.#limits.maxEncryptions - start;
      if (room <= 0) {
        throw new ApiError(
          ErrorCode.Internal,
          `The cipher-API key has made its ${this.#limits.maxEncryptions} allowed encryptions: it cannot encrypt any more (decryption goes on)`,
        );
      }
      const end = start + Math.min(this.#block, room);
      return Promise.resolve({
        document: { ...doc, cipherReserved: end },
        done: () => {
          const g = this.#cipherGrant;
          if (g && g.end === start) g.end = end;
          else this.#cipherGrant = { term: 0, next: start, end };
        },
      });
    }).finally(() => this.#cipherReserving = undefined);
    const pending = this.#cipherReserving;
    if (wait) return pending;
    pending.catch(() => {});
    return Promise.resolve();
  }

  /**
   * Starts a new data-key term: new records are sealed with it at once;
   * every older term stays, to open the records that name it.
   *
   * @param reason why, for the log
   * @returns the new term and the previous one
   */
  async rotate(reason: string): Promise<{ term: number; previous: number }> {
    let previous = 0;
    await this.#update(async (doc) => {
      previous = doc.active;
      await this.#refuseDuringRekey();
      const next = await withNewTerm(
        this.#keys.keyring,
        doc,
        now(),
        this.#block,
      );
      return {
        document: next,
        done: () => {
          this.#grant = { term: next.active, next: 0, end: this.#block };
        },
      };
    });
    const term = this.#keyring.activeTerm;
    this.#log?.warn("Data keys: rotated to a new term", {
      term,
      previous,
      reason,
    });
    this.#schedule();
    return { term, previous };
  }

  /**
   * Drops the keys of every term below `below` (a finished re-encryption
   * left no record that names them).
   *
   * @param below the lowest term to keep; never above the active term
   */
  async retireBelow(below: number): Promise<void> {
    await this.#update((doc) =>
      Promise.resolve({
        document: {
          ...doc,
          terms: doc.terms.filter((t) =>
            t.term >= below || t.term === doc.active
          ),
        },
      })
    );
  }

  /**
   * Records the progress of a re-encryption (null: none running).
   *
   * @param change makes the progress to record from the recorded one
   *   (returning it unchanged writes nothing)
   */
  async updateReencrypt(
    change: (current: ReencryptProgress | null) => ReencryptProgress | null,
  ): Promise<void> {
    await this.#update((doc) => {
      const next = change(doc.reencrypt);
      return Promise.resolve({
        document: next === doc.reencrypt ? doc : { ...doc, reencrypt: next },
      });
    });
  }

  /** Records that recovery shards of the root key were exported now. */
  async recordRecoveryExport(): Promise<void> {
    await this.#update((doc) =>
      Promise.resolve({ document: { ...doc, recoveryExported: now() } })
    );
  }

  /**
   * What status shows about the keys.
   *
   * @returns the key status
   */
  status(): KeyStatus {
    const doc = this.#keyring.document;
    const g = this.#grant;
    const c = this.#cipherGrant;
    return {
      rootKeyCreated: doc.rootKeyCreated,
      recoveryExported: doc.recoveryExported,
      activeTerm: doc.active,
      terms: doc.terms.map((t) => ({
        term: t.term,
        created: t.created,
        encryptions: g?.term === t.term ? g.next : t.reserved ?? null,
      })),
      cipherEncryptions: c?.next ?? doc.cipherReserved,
      maxEncryptions: this.#limits.maxEncryptions,
      rotationPeriodMs: this.#limits.rotationPeriodMs ?? null,
      reencrypt: doc.reencrypt,
    };
  }

  /**
   * First step of a rekey: stores the new root key as pending beside the
   * current one, with the keyring wrapped for it. From here until
   * `commit` or `abort`, keyring writes wait (so the pending keyring stays
   * the keyring): room for encryptions is reserved first, so writes of
   * data go on meanwhile.
   *
   * @param next the purpose keys of the new root key
   * @param pending its key check, split and commitments
   * @returns the window to commit or abort
   * @throws {StoreError} when the store moved to another key meanwhile
   */
  async prepareRekey(
    next: PurposeKeys,
    pending: PendingRootKey,
  ): Promise<RekeyWindow> {
    await this.#reserveRoom(
      Math.min(MAX_REKEY_ROOM, Math.floor(this.#limits.maxEncryptions / 4)),
    );
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    let entered!: () => void;
    const inLine = new Promise<void>((resolve) => entered = resolve);
    const previous = this.#line;
    this.#line = previous.then(() => {
      entered();
      return held;
    }, () => {
      entered();
      return held;
    });
    await inLine;
    let sealed: Sealed;
    const base = this.#keyring.sealed;
    try {
      const document = await rewrapKeyring(
        this.#keys.keyring,
        next.keyring,
        {
          ...this.#keyring.document,
          rootKeyCreated: now(),
          recoveryExported: null,
        },
      );
      sealed = await sealKeyring(next.keyring, document);
      const current = await this.#backend.readMeta();
      if (
        !current ||
        !await this.#backend.writePendingRootKey(
          current.keyCheck,
          pending,
          sealed,
        )
      ) {
        throw new StoreError("The store moved to another root key meanwhile");
      }
    } catch (e) {
      release();
      throw e;
    }
    let ended = false;
    const end = async (step: () => Promise<void>) => {
      if (ended) return;
      ended = true;
      try {
        await step();
      } finally {
        release();
      }
    };
    return {
      commit: () =>
        end(async () => {
          if (
            !await this.#backend.commitPendingRootKey(pending.keyCheck, base)
          ) {
            throw new StoreError(
              "The rekey cannot commit: the pending root key is gone, or another replica wrote the keyring meanwhile; try again",
            );
          }
          this.#keys = next;
          this.#keyring = await openKeyring(
            next.keyring,
            sealed,
            this.#keyring,
          );
        }),
      abort: () => end(() => this.#backend.clearPendingRootKey()),
    };
  }

  // Makes sure this process may make at least `room` more encryptions
  // with the active term before its next keyring write.
  async #reserveRoom(room: number): Promise<void> {
    await this.#update(async (doc) => {
      const g = this.#grant;
      const held = g && g.term === doc.active ? g.end - g.next : 0;
      if (held >= room) return { document: doc };
      const entry = doc.terms.find((t) => t.term === doc.active)!;
      const start = entry.reserved;
      const need = Math.max(room, this.#block);
      if (
        start === undefined || start + need > this.#limits.maxEncryptions
      ) {
        await this.#refuseDuringRekey();
        const next = await withNewTerm(this.#keys.keyring, doc, now(), need);
        return {
          document: next,
          done: () => this.#grant = { term: next.active, next: 0, end: need },
        };
      }
      return {
        document: withReserved(doc, doc.active, start + need),
        done: () => this.#extend(doc.active, start, start + need),
      };
    });
  }

  /** Stops the age timer; the keys stay usable until dropped. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  // Schedules the age rotation of the active term, when a period is set.
  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const period = this.#limits.rotationPeriodMs;
    if (period === undefined || this.#closed) return;
    const created = this.#keyring.document.terms
      .find((t) => t.term === this.#keyring.activeTerm)?.created;
    const due = created === null || created === undefined
      ? 0
      : Date.parse(created) + period - Date.now();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#rotateIfDue().catch((e) =>
        this.#log?.warn("Data keys: rotation by age failed; retrying", {
          error: (e as Error).message,
        })
      ).finally(() => {
        // A failed rotation is retried a minute later.
        if (this.#timer === undefined && !this.#closed) {
          this.#timer = setTimeout(() => this.#schedule(), 60_000);
          Deno.unrefTimer(this.#timer);
        }
      });
    }, Math.min(Math.max(due, 0), MAX_TIMER_MS));
    Deno.unrefTimer(this.#timer);
  }

  async #rotateIfDue(): Promise<void> {
    const period = this.#limits.rotationPeriodMs;
    const active = this.#keyring.document.terms
      .find((t) => t.term === this.#keyring.activeTerm)!;
    const age = active.created === null
      ? Infinity
      : Date.now() - Date.parse(active.created);
    if (period === undefined || age < period) return this.#schedule();
    await this.rotate(
      "the active term reached SPIKE_NEXUS_KEY_ROTATION_PERIOD",
    );
  }

  // Queues `task` behind earlier keyring writes.
  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#line.then(task, task);
    this.#line = run.catch(() => {});
    return run;
  }

  async #reload(): Promise<void> {
    const sealed = await this.#backend.readKeyring();
    if (!sealed) throw new StoreError("The store has no keyring");
    this.#keyring = await openKeyring(
      this.#keys.keyring,
      sealed,
      this.#keyring,
    );
  }

  // One keyring write: `change` makes the next document from the current
  // one; the write is a compare-and-set, and when another writer was first
  // the keyring is read again and `change` applied to it anew.
  #update(
    change: (doc: KeyringDocument) => Promise<{
      document: KeyringDocument;
      done?: () => void;
    }>,
  ): Promise<void> {
    return this.#enqueue(async () => {
      for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
        const current = this.#keyring;
        const { document, done } = await change(current.document);
        if (document === current.document) return;
        const sealed = await sealKeyring(this.#keys.keyring, document);
        if (await this.#backend.writeKeyring(current.sealed, sealed)) {
          this.#keyring = await openKeyring(
            this.#keys.keyring,
            sealed,
            current,
          );
          done?.();
          return;
        }
        await this.#reload();
      }
      throw new StoreError("The keyring kept changing; try again");
    });
  }
}

function withReserved(
  doc: KeyringDocument,
  term: number,
  reserved: number,
): KeyringDocument {
  return {
    ...doc,
    terms: doc.terms.map((t) => t.term === term ? { ...t, reserved } : t),
  };
}

/**
 * The keys of a keyring that is not stored yet (a schema-1 migration
 * seals every record before it writes the keyring): seals are counted in
 * memory and the count goes into the document that is then stored.
 */
export class CountingKeys implements DataKeys {
  readonly #keyring: Keyring;
  #count = 0;

  /** @param keyring the keyring, opened from its first sealing */
  constructor(keyring: Keyring) {
    this.#keyring = keyring;
  }

  /** See {@linkcode DataKeys.sealKey}. */
  sealKey(): SealKey {
    this.#count++;
    return { term: this.#keyring.activeTerm, key: this.#keyring.activeKey };
  }

  /** See {@linkcode DataKeys.openKey}. */
  openKey(term: number): CryptoKey | undefined {
    return this.#keyring.dataKey(term);
  }

  /** The keyring document with the encryptions counted so far. */
  get document(): KeyringDocument {
    const doc = this.#keyring.document;
    const made = doc.terms.find((t) => t.term === doc.active)!.reserved ?? 0;
    return withReserved(doc, doc.active, made + this.#count);
  }
}
