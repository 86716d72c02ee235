// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The PostgreSQL connection settings of nexus: `SPIKE_NEXUS_DATABASE_URL`,
 * a `postgres://` URL with libpq's parameter names, plus the variables for
 * TLS files where a URL is awkward to carry them. Shared by nexus and by
 * the launcher, which grants network access to the database's host:port
 * and read access to the TLS files.
 *
 * @module
 */
import { ConfigError } from "./env.ts";

/** libpq `sslmode` values SPIKE accepts. */
export type SslMode = "disable" | "require" | "verify-ca" | "verify-full";

/** Where the client certificate comes from. */
export type ClientCert =
  /** No client certificate (password or trust authentication). */
  | { readonly kind: "none" }
  /** Nexus's own X.509-SVID and key, current at each new connection. */
  | { readonly kind: "svid" }
  /** PEM files, re-read at each new connection (rotation without restart). */
  | { readonly kind: "files"; readonly cert: string; readonly key: string };

/** Parsed connection settings. */
export interface DatabaseSettings {
  /** Host name or IP address of the primary. */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
  /** The role nexus logs in as. */
  readonly user: string;
  /** Its password, when the URL carries one. */
  readonly password: string | undefined;
  /** The database. */
  readonly database: string;
  /** TLS mode. */
  readonly sslMode: SslMode;
  /**
   * PEM file of the CAs that sign the server certificate, or "system" for
   * the platform's CAs (verify-ca / verify-full only).
   */
  readonly caFile: string | undefined;
  /** The client certificate. */
  readonly clientCert: ClientCert;
  /** libpq `options` (e.g. `-c search_path=spike`), sent at startup. */
  readonly options: string | undefined;
  /** Time limit of one connection attempt, ms. */
  readonly connectTimeoutMs: number;
}

/** The variable of the connection URL. */
export const URL_VAR = "SPIKE_NEXUS_DATABASE_URL";
/** The variable of the server's CA file. */
export const CA_VAR = "SPIKE_NEXUS_DATABASE_CA";
/** The variable of the client certificate file (or `svid`). */
export const CERT_VAR = "SPIKE_NEXUS_DATABASE_CLIENT_CERT";
/** The variable of the client key file. */
export const KEY_VAR = "SPIKE_NEXUS_DATABASE_CLIENT_KEY";

const SSL_MODES: readonly string[] = [
  "disable",
  "require",
  "verify-ca",
  "verify-full",
];

const KNOWN_PARAMS = new Set([
  "sslmode",
  "sslrootcert",
  "sslcert",
  "sslkey",
  "options",
  "connect_timeout",
  "application_name",
]);

/** Reads one variable as the modes do: trimmed, blank is unset. */
export type EnvReader = (name: string) => string | undefined;

/**
 * Parses `SPIKE_NEXUS_DATABASE_URL` and the TLS file variables.
 *
 * @param read reads an environment variable
 * @returns the settings
 * @throws {ConfigError} naming the variable or URL parameter at fault
 */
export function readDatabaseSettings(read: EnvReader): DatabaseSettings {
  const raw = read(URL_VAR);
  if (raw === undefined) {
    throw new ConfigError(
      `${URL_VAR} is required with the postgres backend, e.g. postgres://spike_nexus@db.example:5432/spike`,
    );
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${URL_VAR} is not a URL`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new ConfigError(
      `${URL_VAR} must start with postgres:// or postgresql://`,
    );
  }
  if (url.hostname === "") {
    throw new ConfigError(`${URL_VAR} must name the database host`);
  }
  if (url.hostname.includes(",")) {
    throw new ConfigError(
      `${URL_VAR} names several hosts: give the primary (or a name that always points at it)`,
    );
  }
  const user = decodeURIComponent(url.username);
  if (user === "") {
    throw new ConfigError(
      `${URL_VAR} must name the role nexus logs in as, e.g. postgres://spike_nexus@host/spike`,
    );
  }
  const port = url.port === "" ? 5432 : Number(url.port);
  const params = url.searchParams;
  for (const name of params.keys()) {
    if (!KNOWN_PARAMS.has(name)) {
      throw new ConfigError(
        `${URL_VAR} has the parameter "${name}", which SPIKE does not support (supported: ${
          [...KNOWN_PARAMS].join(", ")
        })`,
      );
    }
  }
  const mode = params.get("sslmode") ?? "verify-full";
  if (mode === "allow" || mode === "prefer") {
    throw new ConfigError(
      `${URL_VAR} has sslmode=${mode}, which may fall back to plaintext: use verify-full (the default), verify-ca, require, or disable`,
    );
  }
  if (!SSL_MODES.includes(mode)) {
    throw new ConfigError(
      `${URL_VAR} has sslmode=${mode}: use verify-full (the default), verify-ca, require or disable`,
    );
  }
  const sslMode = mode as SslMode;
  const caFile = oneOf(read(CA_VAR), params.get("sslrootcert"), CA_VAR);
  if (sslMode.startsWith("verify") && caFile === undefined) {
    throw new ConfigError(
      `sslmode=${sslMode} needs the CA of the database server: set ${CA_VAR} to its PEM file (or "system" for the platform's CAs)`,
    );
  }
  const certFile = oneOf(read(CERT_VAR), params.get("sslcert"), CERT_VAR);
  const keyFile = oneOf(read(KEY_VAR), params.get("sslkey"), KEY_VAR);
  let clientCert: ClientCert = { kind: "none" };
  if (certFile === "svid") {
    if (keyFile !== undefined) {
      throw new ConfigError(
        `${KEY_VAR} must be unset when ${CERT_VAR}=svid: the SVID's own key is used`,
      );
    }
    clientCert = { kind: "svid" };
  } else if (certFile !== undefined || keyFile !== undefined) {
    if (certFile === undefined || keyFile === undefined) {
      throw new ConfigError(
        `${CERT_VAR} and ${KEY_VAR} go together: set both (or ${CERT_VAR}=svid to use nexus's SVID)`,
      );
    }
    clientCert = { kind: "files", cert: certFile, key: keyFile };
  }
  if (clientCert.kind !== "none" && sslMode === "disable") {
    throw new ConfigError(
      `${CERT_VAR} needs TLS, but ${URL_VAR} has sslmode=disable`,
    );
  }
  const timeoutText = params.get("connect_timeout") ?? "10";
  const timeout = Number(timeoutText);
  if (!/^\d+$/.test(timeoutText) || timeout < 1 || timeout > 600) {
    throw new ConfigError(
      `${URL_VAR} has connect_timeout=${timeoutText}: give whole seconds from 1 to 600`,
    );
  }
  return {
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port,
    user,
    password: url.password === ""
      ? undefined
      : decodeURIComponent(url.password),
    database: url.pathname.length > 1
      ? decodeURIComponent(url.pathname.slice(1))
      : user,
    sslMode,
    caFile,
    clientCert,
    options: params.get("options") ?? undefined,
    connectTimeoutMs: timeout * 1000,
  };
}

// A setting given both as a variable and as a URL parameter must agree.
function oneOf(
  fromEnv: string | undefined,
  fromUrl: string | null,
  variable: string,
): string | undefined {
  const url = fromUrl === null || fromUrl === "" ? undefined : fromUrl;
  if (fromEnv !== undefined && url !== undefined && fromEnv !== url) {
    throw new ConfigError(
      `${variable} and the URL's parameter for it disagree: set one`,
    );
  }
  return fromEnv ?? url;
}

/**
 * The files the TLS settings name, for the launcher's read permission.
 *
 * @param settings parsed settings
 * @returns absolute or relative file paths
 */
export function databaseFiles(settings: DatabaseSettings): string[] {
  const files: string[] = [];
  if (settings.caFile !== undefined && settings.caFile !== "system") {
    files.push(settings.caFile);
  }
  if (settings.clientCert.kind === "files") {
    files.push(settings.clientCert.cert, settings.clientCert.key);
  }
  return files;
}
