// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * An SVID source reading the directory layout `spiffe-helper` writes
 * (`SPIKE_SVID_DIR`): `svid.pem` (leaf first, then intermediates),
 * `svid_key.pem` (PKCS#8) and `svid_bundle.pem` (CA certificates of this
 * trust domain, possibly with others appended), plus one bundle file per
 * federated trust domain (`SPIKE_FEDERATED_BUNDLES`). The files are re-read
 * when they change.
 *
 * Files are read with Deno's file API in Deno and with `node:fs` on
 * Node.js (the workload SDK), and watched through `node:fs`: in Deno that
 * module is a large polyfill, about 10 ms of CPU for a CLI that watches
 * nothing, so it is loaded only to watch. The errors carry the same codes.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { FSWatcher } from "node:fs";
import { ConfigError } from "../config/env.ts";
import { createLogger } from "../log.ts";
import { constantTimeEqual, zero } from "../crypto/zero.ts";
import {
  type BundleConfig,
  FEDERATED_BUNDLES_VARIABLE,
  TRUST_CAS_WITHOUT_ID_VARIABLE,
} from "./bundle_config.ts";
import { parseSpiffeId, SpiffeIdError } from "./id.ts";
import type { SvidSource, X509Material } from "./source.ts";
import { chainsToCa, SvidError, verifyOwnSvid } from "./svid.ts";
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
  /** Federated bundle files and the opt-in for CAs without a SPIFFE ID. */
  bundles?: BundleConfig;
}

const NO_FEDERATION: BundleConfig = {
  federated: new Map(),
  trustCasWithoutId: false,
};

const inDeno = typeof Deno !== "undefined";

/** A file's bytes; errors carry node's codes (`ENOENT`, …) either way. */
async function readBytes(path: string): Promise<Uint8Array> {
  if (inDeno) return await Deno.readFile(path);
  const { readFile: readBuffer } = await import("node:fs/promises");
  const buffer = await readBuffer(path);
  // A plain view, not a copy: zeroing it reaches the only key copy, and
  // slice() on it copies as on any Uint8Array (on a Buffer it shares).
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}

/** Inode, size and modification time of a file, for change polling. */
async function fileStamp(path: string): Promise<string> {
  if (inDeno) {
    const s = await Deno.stat(path);
    return `${s.ino}:${s.size}:${s.mtime?.getTime()}`;
  }
  const { stat } = await import("node:fs/promises");
  const s = await stat(path);
  return `${s.ino}:${s.size}:${s.mtimeMs}`;
}

async function readFile(dir: string, name: string): Promise<Uint8Array> {
  const path = `${dir}/${name}`;
  try {
    return await readBytes(path);
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

/** A CA of `svid_bundle.pem` that anchors nothing, and why. */
interface IgnoredCa {
  readonly der: Uint8Array;
  readonly reason: string;
}

function bundleError(dir: string, i: number, message: string): SvidFileError {
  return new SvidFileError(
    `SVID file ${dir}/${BUNDLE_FILE}: certificate ${i + 1} ${message}`,
  );
}

/** The trust domains named by a certificate's `spiffe://` URI SANs. */
function namedTrustDomains(
  der: Uint8Array,
  fail: (message: string) => Error,
): Set<string> {
  let uris: readonly string[];
  try {
    uris = parseCertificate(der).uris;
  } catch (e) {
    if (e instanceof CertificateParseError) {
      throw fail(`is malformed: ${e.message}`);
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
      throw fail(`has an invalid SPIFFE ID: ${e.message}`);
    }
  }
  return domains;
}

/**
 * Files the CAs of `svid_bundle.pem` under trust domains: a CA whose SPIFFE
 * ID names the local trust domain anchors it; one naming a federated trust
 * domain anchors that; one naming any other anchors nothing. A CA without a
 * SPIFFE ID anchors the local trust domain only when this SVID chains to it
 * or the operator opted in. The file alone never makes a foreign CA a local
 * anchor: federated CAs appended to it (spiffe-helper's
 * `include_federated_domains`) would otherwise mint local identities.
 */
function groupBundle(
  dir: string,
  ders: readonly Uint8Array[],
  chain: readonly Uint8Array[],
  ownTrustDomain: string,
  config: BundleConfig,
): { bundles: Map<string, Uint8Array[]>; ignored: IgnoredCa[] } {
  const bundles = new Map<string, Uint8Array[]>();
  const ignored: IgnoredCa[] = [];
  const add = (td: string, der: Uint8Array) => {
    const list = bundles.get(td) ?? [];
    list.push(der);
    bundles.set(td, list);
  };
  ders.forEach((der, i) => {
    const domains = namedTrustDomains(
      der,
      (message) => bundleError(dir, i, message),
    );
    if (domains.size === 0) {
      const others = ders.filter((other) => other !== der);
      if (config.trustCasWithoutId || chainsToCa(chain, der, others)) {
        add(ownTrustDomain, der);
      } else {
        ignored.push({
          der,
          reason:
            `it has no SPIFFE ID and this SVID does not chain to it (set ${TRUST_CAS_WITHOUT_ID_VARIABLE}=true if your PKI's roots carry no SPIFFE ID)`,
        });
      }
      return;
    }
    for (const td of domains) {
      if (td === ownTrustDomain || config.federated.has(td)) {
        add(td, der);
      } else {
        ignored.push({
          der,
          reason:
            `its SPIFFE ID names trust domain "${td}", which is not federated (name its bundle file in ${FEDERATED_BUNDLES_VARIABLE} to trust it)`,
        });
      }
    }
  });
  return { bundles, ignored };
}

function unreadable(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  if (code === "ENOENT") return "is missing";
  if (code === "EACCES" || code === "EPERM") return "is not readable";
  if (code === "EISDIR") return "is a folder";
  return `cannot be read: ${
    typeof code === "string" ? code : (e as Error).name
  }`;
}

/**
 * Reads the bundle file of each federated trust domain. Every certificate
 * must be a CA, and one with a SPIFFE ID must name that trust domain: a file
 * holding another domain's CA is a mistake that would let that domain mint
 * identities of this one.
 */
async function loadFederated(
  config: BundleConfig,
  ownTrustDomain: string,
  bundles: Map<string, Uint8Array[]>,
): Promise<void> {
  const name = FEDERATED_BUNDLES_VARIABLE;
  for (const [td, path] of config.federated) {
    if (td === ownTrustDomain) {
      throw new ConfigError(
        `${name} names "${td}", the trust domain of this SVID: its CAs come from ${BUNDLE_FILE}, list only federated trust domains`,
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = await readBytes(path);
    } catch (e) {
      throw new ConfigError(
        `${name}: the bundle file of "${td}", ${path}, ${unreadable(e)}`,
      );
    }
    let ders: Uint8Array[];
    try {
      ders = pemToDerList(bytes);
    } catch (e) {
      if (!(e instanceof CertificateParseError)) throw e;
      throw new ConfigError(
        `${name}: the bundle file of "${td}", ${path}: ${e.message}`,
      );
    }
    if (ders.length === 0) {
      throw new ConfigError(
        `${name}: the bundle file of "${td}", ${path}, holds no certificate`,
      );
    }
    ders.forEach((der, i) => {
      const fail = (message: string) =>
        new ConfigError(
          `${name}: certificate ${
            i + 1
          } of ${path} (bundle of "${td}") ${message}`,
        );
      const domains = namedTrustDomains(der, fail);
      const other = [...domains].find((d) => d !== td);
      if (other !== undefined) {
        throw fail(
          `names trust domain "${other}", not "${td}": one file per trust domain`,
        );
      }
      if (!parseCertificate(der).basicConstraints?.cA) {
        throw fail("is not a CA certificate");
      }
    });
    const list = bundles.get(td) ?? [];
    for (const der of ders) {
      if (!list.some((held) => bytesEqual(held, der))) list.push(der);
    }
    bundles.set(td, list);
  }
}

/**
 * Reads and validates the three files and the federated bundle files; the
 * caller owns the returned key bytes. CAs of `svid_bundle.pem` that anchor
 * nothing are handed to `report`.
 */
async function load(
  dir: string,
  config: BundleConfig,
  report: (ignored: readonly IgnoredCa[]) => void,
): Promise<X509Material> {
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
    const { bundles, ignored } = groupBundle(
      dir,
      certificates(dir, BUNDLE_FILE, bundleBytes),
      chain,
      ownTrustDomain,
      config,
    );
    await loadFederated(config, ownTrustDomain, bundles);
    const id = verifyOwnSvid(chain, keyPem, bundles);
    report(ignored);
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
async function statSignature(
  dir: string,
  config: BundleConfig,
): Promise<string> {
  const paths = [
    ...[SVID_FILE, KEY_FILE, BUNDLE_FILE].map((name) => `${dir}/${name}`),
    ...config.federated.values(),
  ];
  const parts = await Promise.all(
    paths.map(async (path) => {
      try {
        return await fileStamp(path);
      } catch {
        return "missing";
      }
    }),
  );
  return parts.join("|");
}

/**
 * Opens an SVID directory and validates it (leaf rules, chain to the bundle
 * of its own trust domain, key matching the leaf). Afterwards the files,
 * federated bundle files included, are watched (plus a slow poll); a valid
 * change replaces the material and calls the update listeners, an invalid or
 * half-written one is logged and ignored. A CA of `svid_bundle.pem` that
 * anchors no trust domain is logged once.
 *
 * On rotation the previous material's key bytes are zeroed: take the key from
 * {@linkcode SvidSource.current} when you need it, do not keep it.
 *
 * @param dir the directory holding `svid.pem`, `svid_key.pem`, `svid_bundle.pem`
 * @param options poll interval, whether to watch, a hook for rejected
 *   updates, federated bundles
 * @returns the open source; `close()` (or `using`) stops it
 * @throws {SvidFileError} naming the missing, unreadable or invalid file
 * @throws {ConfigError} naming `SPIKE_FEDERATED_BUNDLES` when a federated
 *   bundle file is missing, unreadable or holds another domain's CA
 */
export async function openFileSvidSource(
  dir: string,
  options: FileSourceOptions = {},
): Promise<FileSvidSource> {
  const config = options.bundles ?? NO_FEDERATION;
  const reported = new Set<string>();
  const report = (ignored: readonly IgnoredCa[]) => {
    for (const { der, reason } of ignored) {
      const sha256 = createHash("sha256").update(der).digest("hex");
      if (reported.has(`${sha256} ${reason}`)) continue;
      reported.add(`${sha256} ${reason}`);
      log.warn(`Ignoring a CA of ${BUNDLE_FILE}: ${reason}`, { dir, sha256 });
    }
  };
  let material = await load(dir, config, report);
  let signature = await statSignature(dir, config);
  const listeners = new Set<(m: X509Material) => void>();
  let closed = false;
  let reloading: Promise<void> | undefined;
  let again = false;
  let debounce: ReturnType<typeof setTimeout> | undefined;

  const reloadOnce = async () => {
    signature = await statSignature(dir, config);
    let next: X509Material;
    try {
      next = await load(dir, config, report);
    } catch (e) {
      if (e instanceof SvidFileError || e instanceof ConfigError) {
        log.warn("Ignoring an invalid SVID file update", {
          dir,
          reason: e.message,
        });
        options.onInvalidUpdate?.(
          e instanceof SvidFileError ? e : new SvidFileError(e.message),
        );
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
    polling = statSignature(dir, config).then((now) => {
      polling = undefined;
      if (now !== signature) reload();
    });
  }, options.pollMs ?? DEFAULT_POLL_MS);

  let watcher: FSWatcher | undefined;
  if (options.watch ?? true) {
    try {
      const { watch } = await import("node:fs");
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
