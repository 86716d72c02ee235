// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A throwaway PostgreSQL cluster on 127.0.0.1 in a temporary folder: the
 * tests, `deno task up --postgres` and the benchmark start one with
 * {@linkcode startPgCluster} and stop it when done. The binaries come from
 * `SPIKE_PG_BIN`, else the newest `/usr/lib/postgresql/<n>/bin` (Debian's
 * `postgresql-15` package), else `pg_config --bindir`. `initdb` refuses to
 * run as root, so as root the cluster runs as the `postgres` user (which
 * the Debian package creates) through `runuser`.
 *
 * The superuser (`postgres`) gets a random password and the cluster takes
 * password (scram) logins on 127.0.0.1, and certificate logins when started
 * with TLS material, as a production server would. With TLS, every login
 * but the superuser's (on 127.0.0.1, for setting up) needs TLS unless an
 * extra `pg_hba.conf` line says otherwise.
 *
 * @module
 */
import { join } from "node:path";

/** TLS material of a cluster: PEM files, read by the server at start. */
export interface PgTls {
  /** The server certificate (its SAN must name 127.0.0.1 for verify-full). */
  readonly certPem: string;
  /** The server key. */
  readonly keyPem: string;
  /** The CAs whose client certificates the server accepts. */
  readonly clientCaPem: string;
}

/** Options of {@linkcode startPgCluster}. */
export interface PgClusterOptions {
  /**
   * fsync and synchronous commit on (default true). Tests that do not
   * measure durability turn it off to spare a shared disk.
   */
  readonly durable?: boolean;
  /** Serve TLS with this material; password logins then need TLS too. */
  readonly tls?: PgTls;
  /** Extra `pg_hba.conf` lines, placed before the default ones. */
  readonly hba?: readonly string[];
  /** `pg_ident.conf` lines (user name maps of `cert … map=`). */
  readonly ident?: readonly string[];
  /** Extra `postgresql.conf` lines. */
  readonly settings?: Readonly<Record<string, string>>;
}

/** Raised when no cluster can be started here; the message says why. */
export class PgUnavailableError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "PgUnavailableError";
  }
}

const SUPERUSER = "postgres";

/** A running throwaway cluster. */
export class PgCluster {
  /** The folder holding the data directory, socket and log. */
  readonly dir: string;
  /** The TCP port on 127.0.0.1. */
  readonly port: number;
  /** The superuser's password. */
  readonly #password: string;
  readonly #bin: string;
  readonly #asPostgres: boolean;
  #stopped = false;

  private constructor(
    dir: string,
    port: number,
    password: string,
    bin: string,
    asPostgres: boolean,
  ) {
    this.dir = dir;
    this.port = port;
    this.#password = password;
    this.#bin = bin;
    this.#asPostgres = asPostgres;
  }

  /** @internal */
  static async start(options: PgClusterOptions = {}): Promise<PgCluster> {
    const bin = await findBinaries();
    const asPostgres = Deno.uid() === 0;
    const dir = await Deno.makeTempDir({ prefix: "spike-pg-" });
    try {
      const password = randomHex(16);
      const port = freePort();
      const data = join(dir, "data");
      await Deno.writeTextFile(join(dir, "pw"), `${password}\n`);
      if (asPostgres) {
        const { uid, gid } = await postgresUser();
        await chownTree(dir, uid, gid);
      }
      const run = (program: string, args: string[]) =>
        runAs(asPostgres, join(bin, program), args);
      await run("initdb", [
        "-D",
        data,
        "-U",
        SUPERUSER,
        "--auth=scram-sha-256",
        `--pwfile=${join(dir, "pw")}`,
        "-E",
        "UTF8",
        "--locale=C",
        "--no-instructions",
      ]);
      await Deno.remove(join(dir, "pw"));
      const durable = options.durable ?? true;
      const settings: Record<string, string> = {
        "listen_addresses": "'127.0.0.1'",
        port: String(port),
        "unix_socket_directories": `'${dir}'`,
        "max_connections": "200",
        "shared_buffers": "32MB",
        fsync: durable ? "on" : "off",
        "synchronous_commit": durable ? "on" : "off",
        "full_page_writes": durable ? "on" : "off",
        "log_min_messages": "warning",
        ...options.settings,
      };
      const hba = [...(options.hba ?? [])];
      if (options.tls) {
        for (
          const [name, pem] of [
            ["server.crt", options.tls.certPem],
            ["server.key", options.tls.keyPem],
            ["client_ca.crt", options.tls.clientCaPem],
          ]
        ) {
          await Deno.writeTextFile(join(data, name!), pem!, { mode: 0o600 });
        }
        Object.assign(settings, {
          ssl: "on",
          ssl_cert_file: "'server.crt'",
          ssl_key_file: "'server.key'",
          ssl_ca_file: "'client_ca.crt'",
        });
        hba.push(
          `hostnossl all ${SUPERUSER} 127.0.0.1/32 scram-sha-256`,
          "hostssl all all 127.0.0.1/32 scram-sha-256",
        );
      } else {
        hba.push("host all all 127.0.0.1/32 scram-sha-256");
      }
      await Deno.writeTextFile(
        join(data, "postgresql.auto.conf"),
        Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join("\n") +
          "\n",
        { append: true },
      );
      await Deno.writeTextFile(
        join(data, "pg_hba.conf"),
        hba.join("\n") + "\n",
      );
      await Deno.writeTextFile(
        join(data, "pg_ident.conf"),
        (options.ident ?? []).map((line) => `${line}\n`).join(""),
      );
      if (asPostgres) {
        const { uid, gid } = await postgresUser();
        await chownTree(dir, uid, gid);
      }
      await run("pg_ctl", [
        "-D",
        data,
        "-l",
        join(dir, "postgres.log"),
        "-w",
        "-t",
        "60",
        "start",
      ]);
      return new PgCluster(dir, port, password, bin, asPostgres);
    } catch (e) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  /**
   * A URL for the superuser, without TLS (for setting up roles and
   * databases).
   *
   * @param database the database (default `postgres`)
   * @returns the URL
   */
  adminUrl(database = "postgres"): string {
    return `postgres://${SUPERUSER}:${this.#password}@127.0.0.1:${this.port}/${database}?sslmode=disable`;
  }

  /**
   * Runs SQL as the superuser through `psql` (one transaction unless the
   * SQL holds statements that cannot run in one, such as CREATE DATABASE).
   *
   * @param sql the statements
   * @param database the database (default `postgres`)
   * @returns psql's output
   */
  async psql(sql: string, database = "postgres"): Promise<string> {
    const out = await new Deno.Command(join(this.#bin, "psql"), {
      args: [
        "-X",
        "-q",
        "-t",
        "-A",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        this.adminUrl(database),
        "-c",
        sql,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { PGCONNECT_TIMEOUT: "10" },
    }).output();
    const text = new TextDecoder();
    if (!out.success) {
      throw new Error(`psql failed: ${text.decode(out.stderr).trim()}`);
    }
    return text.decode(out.stdout);
  }

  /**
   * Creates a login role and a database it owns, so it may create and
   * migrate its tables there: what nexus needs (see the README).
   *
   * @param name the role and database name
   * @param password the role's password
   * @returns the nexus URL for it, without TLS
   */
  async createDatabase(name: string, password: string): Promise<string> {
    await this.psql(
      `CREATE ROLE "${name}" LOGIN PASSWORD '${password}'`,
    );
    await this.psql(`CREATE DATABASE "${name}" OWNER "${name}"`);
    return `postgres://${name}:${password}@127.0.0.1:${this.port}/${name}?sslmode=disable`;
  }

  // pg_ctl's arguments for an immediate stop, waited for.
  #stopArgs(): string[] {
    return ["-D", join(this.dir, "data"), "-m", "immediate", "-w", "stop"];
  }

  /** Stops the server at once and removes its folder. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      await runAs(
        this.#asPostgres,
        join(this.#bin, "pg_ctl"),
        this.#stopArgs(),
      );
    } finally {
      await Deno.remove(this.dir, { recursive: true });
    }
  }

  /**
   * The same as {@linkcode stop}, synchronously: for an `unload` handler,
   * which cannot wait for promises.
   */
  stopSync(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    const [program, args] = commandAs(
      this.#asPostgres,
      join(this.#bin, "pg_ctl"),
      this.#stopArgs(),
    );
    new Deno.Command(program, { args, stdout: "null", stderr: "null" })
      .outputSync();
    Deno.removeSync(this.dir, { recursive: true });
  }

  /** Same as {@linkcode stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/**
 * Starts a throwaway cluster.
 *
 * @param options durability, TLS and extra settings
 * @returns the running cluster
 * @throws {PgUnavailableError} when PostgreSQL is not installed or does not
 * start here
 */
export async function startPgCluster(
  options: PgClusterOptions = {},
): Promise<PgCluster> {
  try {
    return await PgCluster.start(options);
  } catch (e) {
    if (e instanceof PgUnavailableError) throw e;
    throw new PgUnavailableError(
      `PostgreSQL did not start: ${(e as Error).message}`,
    );
  }
}

async function findBinaries(): Promise<string> {
  const explicit = Deno.env.get("SPIKE_PG_BIN");
  if (explicit) return explicit;
  const versions: number[] = [];
  try {
    for await (const entry of Deno.readDir("/usr/lib/postgresql")) {
      if (/^\d+$/.test(entry.name)) versions.push(Number(entry.name));
    }
  } catch {
    // Not the Debian layout.
  }
  for (const v of versions.sort((a, b) => b - a)) {
    const bin = `/usr/lib/postgresql/${v}/bin`;
    if (await exists(join(bin, "initdb"))) return bin;
  }
  try {
    const out = await new Deno.Command("pg_config", {
      args: ["--bindir"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const bin = new TextDecoder().decode(out.stdout).trim();
    if (out.success && await exists(join(bin, "initdb"))) return bin;
  } catch {
    // No pg_config on PATH.
  }
  throw new PgUnavailableError(
    "PostgreSQL is not installed: apt-get install -y postgresql-15, or set SPIKE_PG_BIN to the folder of initdb",
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const out = await new Deno.Command("id", {
    args: ["-u", "postgres"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const gidOut = await new Deno.Command("id", {
    args: ["-g", "postgres"],
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!out.success || !gidOut.success) {
    throw new PgUnavailableError(
      "Running as root, but there is no postgres user to run PostgreSQL as (initdb refuses root)",
    );
  }
  const text = new TextDecoder();
  return {
    uid: Number(text.decode(out.stdout).trim()),
    gid: Number(text.decode(gidOut.stdout).trim()),
  };
}

async function chownTree(dir: string, uid: number, gid: number) {
  await Deno.chown(dir, uid, gid);
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) await chownTree(path, uid, gid);
    else await Deno.chown(path, uid, gid);
  }
}

function commandAs(
  asPostgres: boolean,
  program: string,
  args: string[],
): [string, string[]] {
  return asPostgres
    ? ["runuser", ["-u", "postgres", "--", program, ...args]]
    : [program, args];
}

async function runAs(
  asPostgres: boolean,
  program: string,
  args: string[],
): Promise<void> {
  const [cmd, full] = commandAs(asPostgres, program, args);
  const out = await new Deno.Command(cmd, {
    args: full,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const text = new TextDecoder();
    throw new Error(
      `${program.split("/").at(-1)} failed: ${
        (text.decode(out.stderr) + text.decode(out.stdout)).trim().slice(0, 500)
      }`,
    );
  }
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
