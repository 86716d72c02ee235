// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Connections to PostgreSQL for the postgres backend: a postgres.js pool
 * whose sockets nexus opens itself, so that
 * - every socket has TCP_NODELAY (postgres.js leaves Nagle on: about 45 ms
 *   per TLS connect and per pipelined write otherwise);
 * - TLS follows libpq's `sslmode` (verify-full checks the chain and the host
 *   name, verify-ca only the chain, require neither unless a CA is given,
 *   which it then checks the chain against, as libpq does) with the CA and
 *   client certificate read at each new connection, so rotated files (or a
 *   rotated SVID) are used without a restart;
 * - nothing comes from `PG*` environment variables: every setting is
 *   explicit.
 *
 * Sessions start with the statement and idle-in-transaction timeouts, so a
 * stalled replica cannot hold row locks for long.
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import postgres from "postgres";
import {
  CA_VAR,
  CERT_VAR,
  type DatabaseSettings,
  KEY_VAR,
  URL_VAR,
} from "../../../lib/config/database_url.ts";
import type { SvidSource } from "../../../lib/spiffe/source.ts";
import { tlsIdentity } from "../../../lib/mtls/tls_material.ts";

/** A postgres.js client. */
export type Sql = postgres.Sql;

/** Everything a pool needs. */
export interface PoolSettings {
  /** Where and as whom. */
  readonly database: DatabaseSettings;
  /** Connections in the pool. */
  readonly max: number;
  /** `statement_timeout`, ms. */
  readonly statementTimeoutMs: number;
  /** `idle_in_transaction_session_timeout`, ms. */
  readonly idleInTransactionTimeoutMs: number;
  /** Nexus's SVID source, when the client certificate is the SVID. */
  readonly source?: SvidSource | undefined;
  /** Extra session settings (e.g. `idle_session_timeout`). */
  readonly session?: Readonly<Record<string, string>>;
}

/**
 * A connection failed for a reason in nexus's settings, not in the network:
 * the server certificate does not verify against the CA or the host name,
 * or a TLS file cannot be read. The message names the setting.
 */
export class DatabaseSetupError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DatabaseSetupError";
  }
}

// node:tls codes of a server certificate that does not chain to the CA.
const CHAIN_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "INVALID_CA",
]);

// The SSLRequest message: length 8, code 80877103.
const SSL_REQUEST = new Uint8Array([0, 0, 0, 8, 4, 210, 22, 47]);

/** Callbacks of a pool's connections. */
export interface PoolHooks {
  /** A notification arrived (LISTEN). */
  readonly onnotify?: (channel: string, payload: string) => void;
  /** A connection closed. */
  readonly onclose?: () => void;
}

/**
 * Opens a pool. Connections are made lazily, at the first query.
 *
 * @param settings the pool's settings
 * @param hooks connection callbacks
 * @returns the client
 */
export function openPool(settings: PoolSettings, hooks: PoolHooks = {}): Sql {
  const db = settings.database;
  const watch: StartupWatch = {};
  // `socket` and `max_pipeline` are options its type declarations lack.
  const options: postgres.Options<Record<string, never>> & {
    socket: () => Promise<net.Socket>;
    "max_pipeline": number;
  } = {
    host: db.host,
    port: db.port,
    user: db.user,
    pass: db.password ?? "",
    database: db.database,
    // TLS is negotiated on the socket below, before postgres.js speaks.
    ssl: false,
    socket: () => connectWatched(settings, watch),
    max: settings.max,
    "idle_timeout": 60,
    "connect_timeout": Math.ceil(db.connectTimeoutMs / 1000),
    "max_lifetime": 30 * 60,
    "keep_alive": 15,
    prepare: true,
    "fetch_types": false,
    debug: false,
    onnotice: () => {},
    ...hooks,
    connection: {
      "application_name": "spike-nexus",
      "statement_timeout": settings.statementTimeoutMs,
      "idle_in_transaction_session_timeout":
        settings.idleInTransactionTimeoutMs,
      ...(db.options === undefined ? {} : { options: db.options }),
      ...settings.session,
    },
    // Nothing falls back to PG* variables or the OS user.
    "target_session_attrs": undefined,
    publications: "alltables",
    "max_pipeline": 100,
    backoff: (n: number) => Math.min(0.05 * 2 ** n, 2),
  };
  return postgres(options);
}

// postgres.js 3.4.9 loses a pool connection for good when its socket
// factory rejects (the connection is never handed back: after `max` such
// failures, a refused or unverifiable database, every later query waits
// forever), and reconnects in a loop without failing the waiting query when
// a connection that broke mid-query meets a server refusing its next
// startup (an ErrorResponse before ReadyForQuery; porsager/postgres#1193 is
// the same loop after a clean close). So the factory never rejects: a
// failure comes back as a socket that fails when postgres.js first writes
// to it, the path of a connection the server resets, which fails the query
// and hands the connection back. And a startup that ended before
// ReadyForQuery is remembered for a moment: the pool's next attempt fails
// that way with its error, which ends such a loop.

/** What a pool remembers of its last failed connection. */
interface StartupWatch {
  failure?: { readonly error: Error; readonly at: number } | undefined;
}

/** How long a failed startup answers the pool's next attempts, ms. */
const FAILURE_MEMORY_MS = 1_000;

async function connectWatched(
  settings: PoolSettings,
  watch: StartupWatch,
): Promise<net.Socket> {
  const last = watch.failure;
  if (last && performance.now() - last.at < FAILURE_MEMORY_MS) {
    return failingSocket(last.error);
  }
  let socket: net.Socket;
  try {
    socket = await openSocket(settings);
  } catch (e) {
    return failingSocket(e instanceof Error ? e : new Error(String(e)));
  }
  watchStartup(socket, watch, settings.database);
  return socket;
}

// A socket that fails with `error` when postgres.js writes its startup
// message, once its listeners are on.
function failingSocket(error: Error): net.Socket {
  const socket = new net.Socket();
  socket.write = (() => {
    queueMicrotask(() => socket.destroy(error));
    return true;
  }) as typeof socket.write;
  return socket;
}

// Follows the server's messages until ReadyForQuery; a close before it
// records the startup's failure (the server's ErrorResponse, if any).
function watchStartup(
  socket: net.Socket,
  watch: StartupWatch,
  db: DatabaseSettings,
): void {
  let pending = new Uint8Array(0);
  let refusal: Error | undefined;
  const onData = (chunk: Uint8Array) => {
    const joined = new Uint8Array(pending.length + chunk.length);
    joined.set(pending);
    joined.set(chunk, pending.length);
    pending = joined;
    while (pending.length >= 5) {
      const length = new DataView(
        pending.buffer,
        pending.byteOffset,
        pending.byteLength,
      ).getUint32(1);
      if (pending.length < 1 + length) return;
      if (pending[0] === 0x5a) { // ReadyForQuery
        socket.off("data", onData);
        socket.off("close", onClose);
        watch.failure = undefined;
        return;
      }
      if (pending[0] === 0x45) { // ErrorResponse
        refusal = serverError(pending.subarray(5, 1 + length));
      }
      pending = pending.subarray(1 + length);
    }
  };
  const onClose = () => {
    watch.failure = {
      error: refusal ??
        new Error(
          `The database server at ${db.host}:${db.port} closed the connection before it was ready`,
        ),
      at: performance.now(),
    };
  };
  socket.on("data", onData);
  socket.once("close", onClose);
}

// An ErrorResponse's fields (type byte, text, NUL) as the driver's error.
function serverError(body: Uint8Array): postgres.PostgresError {
  const fields: Record<string, string> = {};
  const text = new TextDecoder();
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const end = body.indexOf(0, at + 1);
    fields[String.fromCharCode(body[at]!)] = text.decode(
      body.subarray(at + 1, end),
    );
    at = end + 1;
  }
  return Reflect.construct(postgres.PostgresError, [{
    message: fields.M ?? "The database server refused the connection",
    severity: fields.V ?? fields.S ?? "FATAL",
    code: fields.C ?? "08000",
  }]) as postgres.PostgresError;
}

// Connects TCP with TCP_NODELAY, then negotiates TLS as libpq does
// (SSLRequest, one byte answer, handshake on the same socket).
async function openSocket(settings: PoolSettings): Promise<net.Socket> {
  const db = settings.database;
  const raw = await connectTcp(db.host, db.port, db.connectTimeoutMs);
  if (db.sslMode === "disable") return raw;
  try {
    const answer = await exchange(raw, SSL_REQUEST, db.connectTimeoutMs);
    if (answer !== 0x53) {
      throw new Error(
        `The database server at ${db.host}:${db.port} does not offer TLS (sslmode=${db.sslMode})`,
      );
    }
    return await startTls(raw, settings);
  } catch (e) {
    raw.destroy();
    throw e;
  }
}

function connectTcp(
  host: string,
  port: number,
  timeoutMs: number,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`Connecting to ${host}:${port} timed out`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

// Writes `message` and reads one byte.
function exchange(
  socket: net.Socket,
  message: Uint8Array,
  timeoutMs: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => done(new Error("The database server did not answer")),
      timeoutMs,
    );
    const onData = (chunk: Uint8Array) => done(undefined, chunk[0]);
    const onError = (e: Error) => done(e);
    const onClose = () => done(new Error("The database server hung up"));
    function done(error?: Error, byte?: number) {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      socket.pause();
      if (error) reject(error);
      else resolve(byte!);
    }
    socket.on("data", onData);
    socket.once("error", onError);
    socket.once("close", onClose);
    socket.write(message);
  });
}

// A TLS file's bytes; a file that cannot be read names its variable.
async function readSetting(path: string, variable: string) {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    throw new DatabaseSetupError(
      `Cannot read ${variable} (${path}): ${(e as Error).message}`,
      { cause: e },
    );
  }
}

async function startTls(
  socket: net.Socket,
  settings: PoolSettings,
): Promise<net.Socket> {
  const db = settings.database;
  // require checks nothing, unless a CA is given (libpq does the same).
  const verify = db.sslMode !== "require" || db.caFile !== undefined;
  const options: tls.ConnectionOptions = {
    socket,
    rejectUnauthorized: verify,
    ...(net.isIP(db.host) ? {} : { servername: db.host }),
    checkServerIdentity: db.sslMode === "verify-full"
      ? (_host, cert) => tls.checkServerIdentity(db.host, cert)
      : () => undefined,
  };
  if (verify && db.caFile !== "system") {
    options.ca = new TextDecoder().decode(
      await readSetting(db.caFile!, CA_VAR),
    );
  }
  const client = db.clientCert;
  if (client.kind === "files") {
    options.cert = new TextDecoder().decode(
      await readSetting(client.cert, CERT_VAR),
    );
    options.key = Buffer.from(await readSetting(client.key, KEY_VAR));
  } else if (client.kind === "svid") {
    const identity = tlsIdentity(settings.source!.current());
    options.cert = identity.cert;
    options.key = identity.key;
  }
  return await new Promise<net.Socket>((resolve, reject) => {
    const secure = tls.connect(options);
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new Error("The TLS handshake with the database timed out"));
    }, db.connectTimeoutMs);
    secure.once("secureConnect", () => {
      clearTimeout(timer);
      secure.removeAllListeners("error");
      resolve(secure);
    });
    secure.once("error", (e) => {
      clearTimeout(timer);
      reject(tlsFailure(e, db));
    });
  });
}

// Says which setting a failed handshake points at.
function tlsFailure(e: Error, db: DatabaseSettings): Error {
  const code = (e as { code?: unknown }).code;
  const at = `${db.host}:${db.port}`;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return new DatabaseSetupError(
      `The database server's certificate does not name ${db.host}, the host in ${URL_VAR} (sslmode=verify-full checks it): connect by a name the certificate holds, or use sslmode=verify-ca (${e.message})`,
      { cause: e },
    );
  }
  if (typeof code === "string" && CHAIN_CODES.has(code)) {
    return new DatabaseSetupError(
      `The database server's certificate at ${at} does not verify against the CA of ${CA_VAR} (or the URL's sslrootcert): ${e.message}`,
      { cause: e },
    );
  }
  return new Error(`TLS with the database at ${at} failed: ${e.message}`, {
    cause: e,
  });
}

/**
 * One sentence for an error of connecting or of a query, naming the
 * setting at fault where one is: TLS verification, unreadable files, a
 * refused login. Never holds the password (PostgreSQL's own messages do
 * not carry it).
 *
 * @param error what a connection or query failed with
 * @param db the connection settings
 * @returns the sentence
 */
export function describeDatabaseError(
  error: unknown,
  db: DatabaseSettings,
): string {
  if (!(error instanceof Error)) return "unknown error";
  const code = (error as { code?: unknown }).code;
  if (
    error instanceof postgres.PostgresError && typeof code === "string" &&
    code.startsWith("28")
  ) {
    const how = db.clientCert.kind === "svid"
      ? `the SVID it presents (${CERT_VAR}=svid) must chain to the server's ssl_ca_file and its subject CN be mapped to the role (pg_ident.conf)`
      : db.clientCert.kind === "files"
      ? `check the certificate in ${CERT_VAR} (its CN, or the role it maps to)`
      : `check the role and password in ${URL_VAR}, or give a client certificate (${CERT_VAR})`;
    return `The database refused the login of role "${db.user}" (${error.message}): ${how}`;
  }
  return error.message;
}

/** SQLSTATE classes and codes that mean "the connection is gone". */
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * Whether an error means the database could not be reached or the
 * connection broke, as opposed to an error the server reported for the
 * statement.
 *
 * @param error what a query rejected with
 * @returns true for connection-level failures
 */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") {
    if (CONNECTION_CODES.has(code)) return true;
    // 08: connection exception; 28: login refused; 57P01..57P03: admin
    // shutdown, crash shutdown, cannot connect now; 53300: too many
    // connections.
    if (
      /^(08|28)/.test(code) || /^57P0[1-3]$/.test(code) || code === "53300"
    ) {
      return true;
    }
  }
  if (error instanceof DatabaseSetupError) return true;
  return !(error instanceof postgres.PostgresError) &&
    /socket|connect|TLS|database server|hung up|timed out/i.test(
      error.message,
    );
}
