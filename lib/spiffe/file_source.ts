// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * An SVID source reading the directory layout `spiffe-helper` writes
 * (`SPIKE_SVID_DIR`): `svid.pem` (leaf first, then intermediates),
 * `svid_key.pem` (PKCS#8) and `svid_bundle.pem` (CA certificates, possibly
 * of several trust domains). The files are re-read when they change.
 *
 * Files are read and watched through `node:fs`, so the workload SDK runs on
 * Node.js too; in Deno these are Deno's own file APIs with the same
 * permission checks.
 *
 * @module
 */
import { type FSWatcher, watch } from "node:fs";
import { readFile as readFileBuffer, stat } from "node:fs/promises";
import { createLogger } from "../log.ts";
import { constantTimeEqual, zero } from "../crypto/zero.ts";
import { parseSpiffeId, SpiffeIdError } from "./id.ts";
import type { SvidSource, X509Material } from "./source.ts";
import { SvidError, verifyOwnSvid } from "./svid.ts";
import {
  bytesEqual,
  CertificateParseError,
  parseCertificate,
  pemToDerList,
} from "./x509.ts";

/** Name of the certificate chain file. */
export const SVID_FILE = "svid.pem";
/** Name of the private key file. */
export const KEY_FILE = "svid_key.pem";
/** Name of the trust bundle file. */
export const BUNDLE_FILE = "svid_bundle.pem";

/** Default interval of the polling fallback. */
export const DEFAULT_POLL_MS = 30_000;
/** Quiet time after a file event before re-reading, so a multi-file update lands whole. */
const DEBOUNCE_MS = 200;

const log = createLogger("svid-files");

/** Raised when the SVID directory cannot provide valid material; names the file. */
export class SvidFileError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "SvidFileError";
  }
}

/** The SVID directory source. */
export interface FileSvidSource extends SvidSource {
  /** Resolves once background work (watcher, a running re-read) has stopped after `close()`. */
  settled(): Promise<void>;
}

/** Options of {@linkcode openFileSvidSource}. */
export interface FileSourceOptions {
  /** Interval of the polling fallback in milliseconds; default 30 s. */
  pollMs?: number;
  /** Watch the directory for file events; default true. Polling always runs. */
  watch?: boolean;
  /** Called when a changed directory fails validation and is ignored. */
  onInvalidUpdate?: (error: SvidFileError) => void;
}

async function readFile(dir: string, name: string): Promise<Uint8Array> {
  const path = `${dir}/${name}`;
  try {
    const buffer = await readFileBuffer(path);
    // A plain view, not a copy: zeroing it reaches the only key copy, and
    // slice() on it copies as on any Uint8Array (on a Buffer it shares).
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === "ENOENT") {
      throw new SvidFileError(`SVID file ${path} is missing`);
    }
    if (code === "EACCES" || code === "EPERM") {
      throw new SvidFileError(`SVID file ${path} is not readable`);
    }
    throw new SvidFileError(
      `SVID file ${path} cannot be read: ${
        typeof code === "string" ? code : (e as Error).name
      }`,
    );
  }
}

function certificates(dir: string, name: string, bytes: Uint8Array) {
  let ders: Uint8Array[];
  try {
    ders = pemToDerList(bytes);
  } catch (e) {
    if (e instanceof CertificateParseError) {
      throw new SvidFileError(`SVID file ${dir}/${name}: ${e.message}`);
    }
    throw e;
  }
  if (ders.length === 0) {
    throw new SvidFileError(`SVID file ${dir}/${name} holds no certificate`);
  }
  return ders;
}

/**
 * Groups bundle CAs by the trust domain of their `spiffe://` URI SAN; a CA
 * without one belongs to `ownTrustDomain`.
 */
function groupBundle(
  dir: string,
  ders: readonly Uint8Array[],
  ownTrustDomain: string,
): Map<string, Uint8Array[]> {
  const bundles = new Map<string, Uint8Array[]>();
  ders.forEach((der, i) => {
    let uris: readonly string[];
    try {
      uris = parseCertificate(der).uris;
    } catch (e) {
      if (e instanceof CertificateParseError) {
        throw new SvidFileError(
          `SVID file ${dir}/${BUNDLE_FILE}: certificate ${
            i + 1
          } is malformed: ${e.message}`,
        );
      }
      throw e;
    }
    const domains = new Set<string>();
    for (const uri of uris) {
      if (!uri.startsWith("spiffe:")) continue;
      try {
        domains.add(parseSpiffeId(uri).trustDomain);
      } catch (e) {
        if (!(e instanceof SpiffeIdError)) throw e;
        throw new SvidFileError(
          `SVID file ${dir}/${BUNDLE_FILE}: certificate ${
            i + 1
          } has an invalid SPIFFE ID: ${e.message}`,
        );
      }
    }
    if (domains.size === 0) domains.add(ownTrustDomain);
    for (const td of domains) {
      const list = bundles.get(td) ?? [];
      list.push(der);
      bundles.set(td, list);
    }
  });
  return bundles;
}

/** Reads and validates the three files; the caller owns the returned key bytes. */
async function load(dir: string): Promise<X509Material> {
  // One after the other, so a missing file is always named in the same order.
  const svidBytes = await readFile(dir, SVID_FILE);
  const bundleBytes = await readFile(dir, BUNDLE_FILE);
  const keyPem = await readFile(dir, KEY_FILE);
  try {
    const chain = certificates(dir, SVID_FILE, svidBytes);
    let ownTrustDomain: string;
    try {
      const leafUri = parseCertificate(chain[0]!).uris[0] ?? "";
      ownTrustDomain = parseSpiffeId(leafUri).trustDomain;
    } catch (e) {
      if (
        !(e instanceof CertificateParseError || e instanceof SpiffeIdError)
      ) throw e;
      // The full check below names the precise problem.
      ownTrustDomain = "";
    }
    const bundles = groupBundle(
      dir,
      certificates(dir, BUNDLE_FILE, bundleBytes),
      ownTrustDomain,
    );
    const id = verifyOwnSvid(chain, keyPem, bundles);
    return { id, chain, keyPem, bundles };
  } catch (e) {
    zero(keyPem);
    if (e instanceof SvidError) {
      throw new SvidFileError(`SVID files in ${dir} are invalid: ${e.message}`);
    }
    throw e;
  }
}

function sameMaterial(a: X509Material, b: X509Material): boolean {
  const sameList = (x: readonly Uint8Array[], y: readonly Uint8Array[]) =>
    x.length === y.length && x.every((d, i) => bytesEqual(d, y[i]!));
  if (!sameList(a.chain, b.chain)) return false;
  if (!constantTimeEqual(a.keyPem, b.keyPem)) return false;
  if (a.bundles.size !== b.bundles.size) return false;
  for (const [td, list] of a.bundles) {
    const other = b.bundles.get(td);
    if (other === undefined || !sameList(list, other)) return false;
  }
  return true;
}

/** A cheap fingerprint of the files' metadata, so polling re-reads only on change. */
async function statSignature(dir: string): Promise<string> {
  const parts = await Promise.all(
    [SVID_FILE, KEY_FILE, BUNDLE_FILE].map(async (name) => {
      try {
        const s = await stat(`${dir}/${name}`);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return "missing";
      }
    }),
  );
  return parts.join("|");
}

/**
 * Opens an SVID directory and validates it (leaf rules, chain to the bundle
 * of its own trust domain, key matching the leaf). Afterwards the files are
 * watched (plus a slow poll); a valid change replaces the material and calls
 * the update listeners, an invalid or half-written one is logged and ignored.
 *
 * On rotation the previous material's key bytes are zeroed: take the key from
 * {@linkcode SvidSource.current} when you need it, do not keep it.
 *
 * @param dir the directory holding `svid.pem`, `svid_key.pem`, `svid_bundle.pem`
 * @param options poll interval, whether to watch, a hook for rejected updates
 * @returns the open source; `close()` (or `using`) stops it
 * @throws {SvidFileError} naming the missing, unreadable or invalid file
 */
export async function openFileSvidSource(
  dir: string,
  options: FileSourceOptions = {},
): Promise<FileSvidSource> {
  let material = await load(dir);
  let signature = await statSignature(dir);
  const listeners = new Set<(m: X509Material) => void>();
  let closed = false;
  let reloading: Promise<void> | undefined;
  let again = false;
  let debounce: ReturnType<typeof setTimeout> | undefined;

  const reloadOnce = async () => {
    signature = await statSignature(dir);
    let next: X509Material;
    try {
      next = await load(dir);
    } catch (e) {
      if (e instanceof SvidFileError) {
        log.warn("Ignoring an invalid SVID file update", {
          dir,
          reason: e.message,
        });
        options.onInvalidUpdate?.(e);
        return;
      }
      throw e;
    }
    if (closed || sameMaterial(material, next)) {
      zero(next.keyPem);
      return;
    }
    const previous = material;
    material = next;
    log.info("SVID files rotated", { dir, id: next.id.uri });
    for (const listener of [...listeners]) {
      try {
        listener(next);
      } catch (e) {
        log.error("An SVID update listener failed", {
          error: (e as Error).name,
        });
      }
    }
    zero(previous.keyPem);
  };

  const reload = () => {
    if (closed) return;
    if (reloading) {
      again = true;
      return;
    }
    reloading = (async () => {
      do {
        again = false;
        try {
          await reloadOnce();
        } catch (e) {
          log.error("Re-reading SVID files failed", {
            dir,
            error: (e as Error).name,
          });
        }
      } while (again && !closed);
      reloading = undefined;
    })();
  };

  const schedule = () => {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = undefined;
      reload();
    }, DEBOUNCE_MS);
  };

  let polling: Promise<void> | undefined;
  const poll = setInterval(() => {
    if (closed || reloading || polling) return;
    polling = statSignature(dir).then((now) => {
      polling = undefined;
      if (now !== signature) reload();
    });
  }, options.pollMs ?? DEFAULT_POLL_MS);

  let watcher: FSWatcher | undefined;
  if (options.watch ?? true) {
    try {
      watcher = watch(dir, { persistent: false }, () => schedule());
      watcher.on("error", (e) => {
        if (!closed) {
          log.warn("Watching the SVID directory stopped; polling only", {
            dir,
            error: e.name,
          });
        }
      });
    } catch (e) {
      log.warn("Watching the SVID directory failed; polling only", {
        dir,
        error: (e as Error).name,
      });
    }
  }

  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(poll);
    clearTimeout(debounce);
    try {
      watcher?.close();
    } catch {
      // Already closed by the runtime; nothing left to release.
    }
    listeners.clear();
    zero(material.keyPem);
  };

  return {
    current: () => {
      if (closed) throw new SvidFileError("The SVID source is closed");
      return material;
    },
    onUpdate: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close,
    [Symbol.dispose]: close,
    settled: async () => {
      await Promise.all([reloading, polling]);
    },
  };
}
