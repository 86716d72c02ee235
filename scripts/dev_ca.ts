// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A development certificate authority: issues X.509-SVIDs for any SPIFFE ID
 * and writes them in the layout `spiffe-helper` uses (`svid.pem`,
 * `svid_key.pem`, `svid_bundle.pem`). For local clusters and tests only; in
 * production SVIDs come from SPIRE.
 *
 * CLI:
 *   deno run --allow-read --allow-write scripts/dev_ca.ts init <ca-dir> [trust-domain]
 *   deno run --allow-read --allow-write scripts/dev_ca.ts issue <ca-dir> <spiffe-id> <out-dir>
 *
 * @module
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(crypto);

const EC: EcKeyGenParams & EcdsaParams = {
  name: "ECDSA",
  namedCurve: "P-256",
  hash: "SHA-256",
};
const DAY_MS = 86_400_000;

/** A certificate authority for one trust domain. */
export interface DevCa {
  /** The trust domain this CA signs for. */
  readonly trustDomain: string;
  /** The CA certificate. */
  readonly cert: x509.X509Certificate;
  /** The CA key pair. */
  readonly keys: CryptoKeyPair;
}

/** An issued certificate with its key. */
export interface IssuedSvid {
  /** DER of the leaf certificate. */
  readonly certDer: Uint8Array;
  /** PEM of the leaf certificate. */
  readonly certPem: string;
  /** PEM (PKCS#8) of the private key. */
  readonly keyPem: string;
  /** DER (PKCS#8) of the private key. */
  readonly keyDer: Uint8Array;
}

/** Knobs that make deliberately bad certificates for tests. */
export interface IssueOptions {
  /** Start of validity; default one hour ago. */
  notBefore?: Date;
  /** End of validity; default in 30 days. */
  notAfter?: Date;
  /** Mark the leaf as a CA (basicConstraints cA=true, keyCertSign). */
  asCa?: boolean;
  /** URI SANs to put in the certificate; default `[spiffeId]`. */
  uris?: string[];
  /** Key usage flags; default digitalSignature | keyEncipherment. */
  keyUsage?: number;
  /** Omit the key usage extension. */
  noKeyUsage?: boolean;
  /** Serial number as hex; default random. */
  serialNumber?: string;
  /**
   * DNS SANs; the first is also the subject CN, as SPIRE does with an
   * entry's DNS names (PostgreSQL maps a client certificate by its CN).
   */
  dnsNames?: string[];
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Creates a self-signed CA for a trust domain.
 *
 * @param trustDomain e.g. `spike.ist`
 * @param options validity overrides; `withoutSpiffeId` for a CA whose
 *   certificate names no trust domain
 * @returns the CA
 */
export async function createDevCa(
  trustDomain = "spike.ist",
  options: {
    notBefore?: Date;
    notAfter?: Date;
    /** Leave out the `spiffe://<td>` URI SAN, as many corporate roots do. */
    withoutSpiffeId?: boolean;
  } = {},
): Promise<DevCa> {
  const keys = await crypto.subtle.generateKey(EC, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=SPIKE dev CA ${trustDomain}, O=SPIKE`,
    notBefore: options.notBefore ?? new Date(Date.now() - 3_600_000),
    notAfter: options.notAfter ?? new Date(Date.now() + 3650 * DAY_MS),
    signingAlgorithm: EC,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      ...(options.withoutSpiffeId ? [] : [
        new x509.SubjectAlternativeNameExtension([
          { type: "url", value: `spiffe://${trustDomain}` },
        ]),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { trustDomain, cert, keys };
}

/**
 * Issues an X.509-SVID for `spiffeId`, signed by `ca`.
 *
 * @param ca the issuing CA
 * @param spiffeId the SPIFFE ID for the URI SAN
 * @param options overrides that make deliberately bad certificates
 * @returns the certificate and key
 */
export async function issueSvid(
  ca: DevCa,
  spiffeId: string,
  options: IssueOptions = {},
): Promise<IssuedSvid> {
  const keys = await crypto.subtle.generateKey(EC, true, ["sign", "verify"]);
  const uris = options.uris ?? [spiffeId];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(options.asCa ?? false, undefined, true),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (!options.noKeyUsage) {
    const defaultUsage = options.asCa
      ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature
      : x509.KeyUsageFlags.digitalSignature |
        x509.KeyUsageFlags.keyEncipherment;
    extensions.push(
      new x509.KeyUsagesExtension(options.keyUsage ?? defaultUsage, true),
    );
  }
  if (!options.asCa) {
    extensions.push(
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
    );
  }
  const dnsNames = options.dnsNames ?? [];
  if (uris.length + dnsNames.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        [
          ...uris.map((value) => ({ type: "url" as const, value })),
          ...dnsNames.map((value) => ({ type: "dns" as const, value })),
        ],
        true,
      ),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: options.serialNumber ?? randomSerial(),
    subject: dnsNames.length > 0 ? `CN=${dnsNames[0]}, O=SPIKE` : "O=SPIKE",
    issuer: ca.cert.subject,
    notBefore: options.notBefore ?? new Date(Date.now() - 3_600_000),
    notAfter: options.notAfter ?? new Date(Date.now() + 30 * DAY_MS),
    signingAlgorithm: EC,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions,
  });
  const keyDer = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", keys.privateKey),
  );
  return {
    certDer: new Uint8Array(cert.rawData),
    certPem: cert.toString("pem"),
    keyPem: x509.PemConverter.encode(keyDer.buffer, "PRIVATE KEY"),
    keyDer,
  };
}

/** Knobs for an intermediate CA. */
export interface IntermediateOptions {
  /** Start of validity; default one hour ago. */
  notBefore?: Date;
  /** End of validity; default in 365 days. */
  notAfter?: Date;
  /** basicConstraints pathLenConstraint; default none. */
  pathLength?: number;
  /** Key usage flags; default keyCertSign | cRLSign. */
  keyUsage?: number;
}

/**
 * Issues an intermediate CA signed by `ca`, for the same trust domain. The
 * result issues SVIDs like any {@linkcode DevCa}; a presented chain is then
 * the SVID followed by `intermediate.cert`.
 *
 * @param ca the issuing CA
 * @param options overrides
 * @returns the intermediate CA
 */
export async function issueIntermediateCa(
  ca: DevCa,
  options: IntermediateOptions = {},
): Promise<DevCa> {
  const keys = await crypto.subtle.generateKey(EC, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=SPIKE dev intermediate CA ${ca.trustDomain} ${
      randomSerial().slice(0, 8)
    }, O=SPIKE`,
    issuer: ca.cert.subject,
    notBefore: options.notBefore ?? new Date(Date.now() - 3_600_000),
    notAfter: options.notAfter ?? new Date(Date.now() + 365 * DAY_MS),
    signingAlgorithm: EC,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, options.pathLength, true),
      new x509.KeyUsagesExtension(
        options.keyUsage ??
          (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign),
        true,
      ),
      new x509.SubjectAlternativeNameExtension([
        { type: "url", value: `spiffe://${ca.trustDomain}` },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { trustDomain: ca.trustDomain, cert, keys };
}

/**
 * Writes an SVID directory: `svid.pem`, `svid_key.pem` (0600) and
 * `svid_bundle.pem` holding every given CA (several trust domains allowed).
 *
 * @param dir the directory, created 0700 when missing
 * @param svid the issued SVID
 * @param bundle the CAs to trust
 */
export async function writeSvidDir(
  dir: string,
  svid: IssuedSvid,
  bundle: readonly DevCa[],
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = (name: string) => `${dir}/.${name}.tmp`;
  const files: [string, string, number][] = [
    ["svid.pem", svid.certPem + "\n", 0o644],
    ["svid_key.pem", svid.keyPem + "\n", 0o600],
    [
      "svid_bundle.pem",
      bundle.map((ca) => ca.cert.toString("pem")).join("\n") + "\n",
      0o644,
    ],
  ];
  // Write then rename, so a watcher never sees half a file.
  for (const [name, text, mode] of files) {
    await Deno.writeTextFile(tmp(name), text, { mode });
    await Deno.rename(tmp(name), `${dir}/${name}`);
  }
}

/**
 * Issues an SVID and writes its directory in one step.
 *
 * @param ca the issuing CA (also the bundle unless `bundle` is given)
 * @param spiffeId the SPIFFE ID
 * @param dir the output directory
 * @param options issue options, plus an explicit bundle
 */
export async function issueSvidDir(
  ca: DevCa,
  spiffeId: string,
  dir: string,
  options: IssueOptions & { bundle?: readonly DevCa[] } = {},
): Promise<IssuedSvid> {
  const svid = await issueSvid(ca, spiffeId, options);
  await writeSvidDir(dir, svid, options.bundle ?? [ca]);
  return svid;
}

/**
 * Saves a CA (certificate and key) to a directory, key file 0600.
 *
 * @param dir the directory
 * @param ca the CA
 */
export async function saveDevCa(dir: string, ca: DevCa): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const keyDer = await crypto.subtle.exportKey("pkcs8", ca.keys.privateKey);
  await Deno.writeTextFile(`${dir}/ca.pem`, ca.cert.toString("pem") + "\n");
  await Deno.writeTextFile(
    `${dir}/ca_key.pem`,
    x509.PemConverter.encode(keyDer, "PRIVATE KEY") + "\n",
    { mode: 0o600 },
  );
  await Deno.writeTextFile(`${dir}/trust_domain`, ca.trustDomain + "\n");
}

/**
 * Loads a CA saved by {@linkcode saveDevCa}.
 *
 * @param dir the directory
 * @returns the CA
 */
export async function loadDevCa(dir: string): Promise<DevCa> {
  const cert = new x509.X509Certificate(
    await Deno.readTextFile(`${dir}/ca.pem`),
  );
  const [keyDer] = x509.PemConverter.decode(
    await Deno.readTextFile(`${dir}/ca_key.pem`),
  );
  const privateKey = await crypto.subtle.importKey(
    "pkcs8",
    keyDer!,
    EC,
    true,
    ["sign"],
  );
  const publicKey = await cert.publicKey.export(EC, ["verify"]);
  const trustDomain = (await Deno.readTextFile(`${dir}/trust_domain`)).trim();
  return { trustDomain, cert, keys: { privateKey, publicKey } };
}

if (import.meta.main) {
  const [command, caDir, ...rest] = Deno.args;
  if (command === "init" && caDir) {
    await saveDevCa(caDir, await createDevCa(rest[0] ?? "spike.ist"));
    console.log(`Dev CA written to ${caDir}`);
  } else if (command === "issue" && caDir && rest.length === 2) {
    const ca = await loadDevCa(caDir);
    await issueSvidDir(ca, rest[0]!, rest[1]!);
    console.log(`SVID for ${rest[0]} written to ${rest[1]}`);
  } else {
    console.error(
      "Usage: dev_ca.ts init <ca-dir> [trust-domain] | issue <ca-dir> <spiffe-id> <out-dir>",
    );
    Deno.exit(2);
  }
}
