// Copyright 2026 the SPIKE for Deno authors. MIT license.
// The launcher's permission flags: read configuration as the modes read it,
// grant nothing for values the modes refuse, and give pilot exactly the
// files a command reads or writes.
import assert from "node:assert/strict";
import {
  ENV_ALLOW,
  permissionFlags,
  PILOT_FILE_COMMANDS,
} from "../scripts/permission_flags.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CWD = "/work/caller";
const SVID = { SPIKE_SVID_DIR: "/svid", PWD: CWD, HOME: "/home/op" };

/** The entries of one `--allow-<name>=` flag; empty when the flag is absent. */
function allowed(flags: string[], name: string): string[] {
  const flag = flags.find((f) => f.startsWith(`--allow-${name}=`));
  return flag === undefined ? [] : flag.slice(flag.indexOf("=") + 1).split(",");
}

function pilot(args: string[], env: Record<string, string> = {}) {
  return permissionFlags("pilot", { ...SVID, ...env }, args);
}

Deno.test("a listen port without a colon grants that port on every interface", () => {
  const nexus = permissionFlags("nexus", {
    ...SVID,
    SPIKE_NEXUS_TLS_PORT: "8553",
    SPIKE_NEXUS_BACKEND_STORE: "memory",
  });
  assert.deepEqual(
    allowed(nexus, "net").filter((h) => h.endsWith(":8553")),
    ["0.0.0.0:8553", "[::]:8553"],
  );
  const keeper = permissionFlags("keeper", {
    ...SVID,
    SPIKE_KEEPER_TLS_PORT: " 8443 ",
  });
  assert.deepEqual(allowed(keeper, "net"), ["0.0.0.0:8443", "[::]:8443"]);
});

Deno.test("listen addresses with a host grant that host only", () => {
  const cases: [string, string[]][] = [
    ["127.0.0.1:9000", ["127.0.0.1:9000"]],
    ["[::1]:9000", ["[::1]:9000"]],
    ["[::]:9000", ["0.0.0.0:9000", "[::]:9000"]],
    [":9000", ["0.0.0.0:9000", "[::]:9000"]],
    ["", ["0.0.0.0:8443", "[::]:8443"]],
  ];
  for (const [value, hosts] of cases) {
    const flags = permissionFlags("keeper", {
      ...SVID,
      SPIKE_KEEPER_TLS_PORT: value,
    });
    assert.deepEqual(allowed(flags, "net"), hosts, value);
  }
});

Deno.test("values the modes refuse grant nothing instead of throwing", () => {
  const keeper = permissionFlags("keeper", {
    PWD: CWD,
    SPIKE_KEEPER_TLS_PORT: "port:eighty",
    SPIFFE_ENDPOINT_SOCKET: "/tmp/x.sock",
  });
  assert.deepEqual(allowed(keeper, "net"), []);
  assert.ok(!keeper.some((f) => /^--allow-(net|read|write)=/.test(f)));
  assert.deepEqual(
    allowed(pilot(["status"], { SPIKE_NEXUS_API_URL: "not a url" }), "net"),
    [],
  );
  assert.deepEqual(
    allowed(
      pilot(["status"], { SPIKE_NEXUS_API_URL: "http://nexus:8553" }),
      "net",
    ),
    [],
  );
  const nexus = permissionFlags("nexus", {
    ...SVID,
    SPIKE_NEXUS_KEEPER_PEERS: "keeper 1,https://keeper-2:8443,https://[::1]",
  });
  assert.deepEqual(allowed(nexus, "net"), [
    "0.0.0.0:8553",
    "[::]:8553",
    "keeper-2:8443",
    "[::1]:443",
  ]);
});

Deno.test("Workload API endpoints grant their socket, and no endpoint grants none", () => {
  const unix = permissionFlags("keeper", {
    PWD: CWD,
    SPIFFE_ENDPOINT_SOCKET: "unix:///run/agent.sock",
  });
  assert.ok(allowed(unix, "net").includes("unix:/run/agent.sock"));
  assert.deepEqual(allowed(unix, "read"), ["/run/agent.sock"]);
  assert.deepEqual(allowed(unix, "write"), ["/run/agent.sock"]);
  const tcp = permissionFlags("keeper", {
    PWD: CWD,
    SPIFFE_ENDPOINT_SOCKET: "tcp://[::1]:8081",
  });
  assert.ok(allowed(tcp, "net").includes("[::1]:8081"));
  assert.deepEqual(allowed(tcp, "read"), []);
  const none = permissionFlags("keeper", { PWD: CWD });
  assert.deepEqual(allowed(none, "net"), ["0.0.0.0:8443", "[::]:8443"]);
  assert.deepEqual(allowed(none, "read"), []);
});

Deno.test("every form of pilot's file options names the same file", () => {
  const forms = [
    ["-f", "in.txt", "-o", "out.bin"],
    ["-fin.txt", "-oout.bin"],
    ["--file=in.txt", "--out=out.bin"],
    ["--file", "in.txt", "--out", "out.bin"],
    ["--json", "-f", `${CWD}/in.txt`, "-o", `${CWD}/out.bin`],
    // Go-style forms, which pilot reads the same way.
    ["-file=in.txt", "-out=out.bin"],
    ["-file", "in.txt", "-out", "out.bin"],
    ["-f=in.txt", "-o=out.bin"],
  ];
  for (const form of forms) {
    for (const command of ["encrypt", "decrypt"]) {
      const flags = pilot(["cipher", command, ...form]);
      assert.deepEqual(allowed(flags, "read"), ["/svid", `${CWD}/in.txt`]);
      assert.deepEqual(allowed(flags, "write"), [`${CWD}/out.bin`]);
    }
  }
  for (
    const form of [["--file", "p.yaml"], ["--file=p.yaml"], ["-file=p.yaml"]]
  ) {
    const flags = pilot(["policy", "apply", ...form]);
    assert.deepEqual(allowed(flags, "read"), ["/svid", `${CWD}/p.yaml`]);
  }
});

Deno.test("pilot may only read its input files and only write -o and the recovery folder", () => {
  const get = pilot(["secret", "get", "apps/db", "-f", "json"]);
  assert.deepEqual(allowed(get, "read"), ["/svid"]);
  assert.deepEqual(allowed(get, "write"), []);
  const apply = pilot(["policy", "apply", "--file", "policy.yaml"]);
  assert.deepEqual(allowed(apply, "write"), []);
  const encrypt = pilot(["cipher", "encrypt", "-f", "in.txt"]);
  assert.deepEqual(allowed(encrypt, "write"), []);
  const stdio = pilot(["cipher", "encrypt", "-f", "-", "-o", "-"]);
  assert.deepEqual(allowed(stdio, "read"), ["/svid"]);
  assert.deepEqual(allowed(stdio, "write"), []);
  const drill = pilot([
    "operator",
    "drill",
    "-f",
    "json",
    "spike.recovery.1.txt",
    "/abs/spike.recovery.2.txt",
  ]);
  assert.deepEqual(allowed(drill, "read"), [
    "/svid",
    `${CWD}/spike.recovery.1.txt`,
    "/abs/spike.recovery.2.txt",
    "/home/op/.spike/recover",
  ]);
  assert.deepEqual(allowed(drill, "write"), []);
  const restore = pilot(["operator", "restore", "spike.recovery.2.txt"]);
  assert.deepEqual(allowed(restore, "read"), [
    "/svid",
    `${CWD}/spike.recovery.2.txt`,
  ]);
  assert.deepEqual(allowed(restore, "write"), []);
  const piped = pilot(["operator", "restore", "-"]);
  assert.deepEqual(allowed(piped, "read"), ["/svid"]);
  const recover = pilot(["operator", "recover"], {
    SPIKE_PILOT_RECOVERY_DIR: "shards",
  });
  assert.deepEqual(allowed(recover, "write"), [`${CWD}/shards`]);
  const status = pilot(["status"]);
  assert.deepEqual(allowed(status, "read"), ["/svid"]);
  assert.deepEqual(allowed(status, "write"), []);
  for (const out of [["-o", "b.spkb"], ["--out=b.spkb"], ["-ob.spkb"]]) {
    const backup = pilot(["operator", "backup", ...out]);
    // Deno renames a file only with read access to it.
    assert.deepEqual(allowed(backup, "read"), [
      "/svid",
      `${CWD}/b.spkb.partial`,
    ]);
    assert.deepEqual(allowed(backup, "write"), [
      `${CWD}/b.spkb`,
      `${CWD}/b.spkb.partial`,
    ]);
  }
  const toStdout = pilot(["operator", "backup", "-o", "-"]);
  assert.deepEqual(allowed(toStdout, "write"), []);
  for (const command of ["rotate", "rekey"]) {
    const flags = pilot(["operator", command, "--shares", "5"]);
    assert.deepEqual(allowed(flags, "read"), ["/svid"]);
    assert.deepEqual(allowed(flags, "write"), []);
  }
});

Deno.test("nexus restore-backup may read its backup file and nothing else more", () => {
  const env = { ...SVID, SPIKE_NEXUS_DATA_DIR: "/data" };
  const serve = permissionFlags("nexus", env);
  const restore = permissionFlags("nexus", env, [
    "restore-backup",
    "backups/monday.spkb",
  ]);
  assert.deepEqual(allowed(restore, "read"), [
    ...allowed(serve, "read"),
    `${CWD}/backups/monday.spkb`,
  ]);
  assert.deepEqual(allowed(restore, "write"), allowed(serve, "write"));
  for (
    const args of [
      ["restore-backup"],
      ["restore-backup", "a", "b"],
      ["restore-backup", "a", "--bogus"],
      ["restore-backup", "a", "--help"],
      ["serve", "a"],
    ]
  ) {
    const flags = permissionFlags("nexus", env, args);
    assert.deepEqual(
      allowed(flags, "read"),
      allowed(serve, "read"),
      args.join(" "),
    );
  }
});

Deno.test("arguments pilot refuses grant no files", () => {
  for (
    const args of [
      ["cipher", "encrypt", "-f", "in.txt", "--bogus"],
      ["cipher", "encrypt", "-f", "in.txt", "--help"],
      ["policy", "apply", "-f", "policy.yaml"],
    ]
  ) {
    const flags = pilot(args);
    assert.deepEqual(allowed(flags, "read"), ["/svid"], args.join(" "));
    assert.deepEqual(allowed(flags, "write"), [], args.join(" "));
  }
});

Deno.test("relative configured paths resolve against the mode's folder", () => {
  const nexus = permissionFlags("nexus", {
    PWD: CWD,
    SPIKE_SVID_DIR: "svid",
    SPIKE_NEXUS_DATA_DIR: "data/",
    SPIKE_NEXUS_AUDIT_LOG: "audit.log",
  });
  assert.deepEqual(allowed(nexus, "read"), [
    `${CWD}/svid`,
    `${CWD}/data`,
    CWD,
  ]);
  assert.deepEqual(allowed(nexus, "write"), [
    `${CWD}/data`,
    `${CWD}/audit.log`,
  ]);
});

Deno.test("a path with a comma is left out rather than split into two grants", () => {
  const flags = pilot(["cipher", "encrypt", "-f", "a,/etc/shadow"]);
  assert.deepEqual(allowed(flags, "read"), ["/svid"]);
  assert.ok(!allowed(flags, "read").includes("/etc/shadow"));
});

/** The options a pilot command's --help lists: long name -> [short, takes a value]. */
async function helpOptions(
  command: string,
): Promise<Map<string, [string | undefined, boolean]>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      `--allow-env=${ENV_ALLOW.join(",")}`,
      "--ignore-env",
      MAIN,
      "pilot",
      ...command.split(" "),
      "--help",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const options = new Map<string, [string | undefined, boolean]>();
  const help = new TextDecoder().decode(out.stdout);
  const section = help.slice(help.indexOf("\nOptions:\n"));
  for (const line of section.split("\n")) {
    const m = /^ {2}(?:-(\w), )?--([\w-]+)( [A-Z]\b)?/.exec(line);
    if (m && m[2] !== "help") options.set(m[2]!, [m[1], m[3] !== undefined]);
  }
  return options;
}

Deno.test("the launcher parses the file commands with pilot's own options", async () => {
  for (const [command, spec] of Object.entries(PILOT_FILE_COMMANDS)) {
    const expected = new Map(
      Object.entries(spec.options).map((
        [name, o],
      ) => [
        name,
        [o.short, o.type === "string"] as [string | undefined, boolean],
      ]),
    );
    assert.deepEqual(await helpOptions(command), expected, command);
  }
});

Deno.test("nexus on postgres may reach its database and read its TLS files, and no data folder", () => {
  const base = {
    ...SVID,
    SPIKE_NEXUS_BACKEND_STORE: "postgres",
    SPIKE_NEXUS_TLS_PORT: "127.0.0.1:8553",
    SPIKE_NEXUS_KEEPER_PEERS: "https://k1:8443",
  };
  const flags = permissionFlags("nexus", {
    ...base,
    SPIKE_NEXUS_DATABASE_URL:
      "postgres://spike_nexus@db.example:6432/spike?sslrootcert=tls/ca.pem",
    SPIKE_NEXUS_DATABASE_CLIENT_CERT: "/etc/spike/db.crt",
    SPIKE_NEXUS_DATABASE_CLIENT_KEY: "db.key",
  });
  assert.deepEqual(allowed(flags, "net").sort(), [
    "127.0.0.1:8553",
    "db.example:6432",
    "k1:8443",
  ]);
  assert.deepEqual(allowed(flags, "read").sort(), [
    "/etc/spike/db.crt",
    "/svid",
    `${CWD}/db.key`,
    `${CWD}/tls/ca.pem`,
  ]);
  assert.deepEqual(allowed(flags, "write"), []);
  // The SVID as client certificate needs no file; an IPv6 host and the
  // default port.
  const svid = permissionFlags("nexus", {
    ...base,
    SPIKE_NEXUS_DATABASE_URL:
      "postgresql://spike_nexus@[fd00::5]/spike?sslmode=require",
    SPIKE_NEXUS_DATABASE_CLIENT_CERT: "svid",
  });
  assert.ok(allowed(svid, "net").includes("[fd00::5]:5432"));
  assert.deepEqual(allowed(svid, "read"), ["/svid"]);
  // A URL nexus refuses grants no database access.
  for (
    const url of [
      "mysql://x@db:1/y",
      "postgres://db:5432/spike",
      "postgres://u@db/spike?sslmode=prefer",
      "postgres://u@db/spike",
    ]
  ) {
    const refused = permissionFlags("nexus", {
      ...base,
      SPIKE_NEXUS_DATABASE_URL: url,
    });
    assert.ok(
      !allowed(refused, "net").some((h) => h.startsWith("db:")),
      url,
    );
  }
});

Deno.test("federated bundle files are readable next to the SVID directory, and only with one", () => {
  const env = {
    ...SVID,
    SPIKE_FEDERATED_BUNDLES:
      "partner.example=fed/partner.pem, other.example=/etc/spike/other.pem",
  };
  for (const mode of ["nexus", "keeper", "pilot"] as const) {
    const flags = permissionFlags(
      mode,
      env,
      mode === "pilot" ? ["status"] : [],
    );
    const read = allowed(flags, "read");
    assert.ok(read.includes(`${CWD}/fed/partner.pem`), mode);
    assert.ok(read.includes("/etc/spike/other.pem"), mode);
  }
  const socket = permissionFlags("keeper", {
    PWD: CWD,
    SPIFFE_ENDPOINT_SOCKET: "unix:///run/agent.sock",
    SPIKE_FEDERATED_BUNDLES: "partner.example=/etc/spike/partner.pem",
  });
  assert.ok(!allowed(socket, "read").includes("/etc/spike/partner.pem"));
  const invalid = permissionFlags("keeper", {
    ...SVID,
    SPIKE_FEDERATED_BUNDLES: "no-equals-sign",
  });
  assert.deepEqual(allowed(invalid, "read"), ["/svid"]);
});

Deno.test("secret put may read the files of key=@file and @file, and nothing else", () => {
  const put = pilot([
    "secret",
    "put",
    "apps/tls",
    "cert=@tls/cert.pem",
    "key=@/etc/tls/key.pem",
    "password=-",
    "user=app",
    "note=a=@b",
    "--cas",
    "3",
  ]);
  assert.deepEqual(allowed(put, "read"), [
    "/svid",
    `${CWD}/tls/cert.pem`,
    "/etc/tls/key.pem",
  ]);
  assert.deepEqual(allowed(put, "write"), []);
  const json = pilot(["secret", "put", "apps/db", "@values.json"]);
  assert.deepEqual(allowed(json, "read"), ["/svid", `${CWD}/values.json`]);
  // The path is never a file.
  const path = pilot(["secret", "put", "@apps", "k=v"]);
  assert.deepEqual(allowed(path, "read"), ["/svid"]);
});
