// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import {
  parseCommand,
  parseFormat,
  parsePermissionList,
  parseVersion,
  parseVersionList,
} from "../modes/pilot/args.ts";
import { CliError } from "../modes/pilot/cli_error.ts";
import { normalizeGoStyleFlags } from "../lib/go_style_flags.ts";
import { ExitCode } from "../modes/pilot/exit_codes.ts";
import { checkSecretPath, parseKeyValuePairs } from "../modes/pilot/secret.ts";
import { policyFromFlags } from "../modes/pilot/policy.ts";
import {
  checkStreamCiphertext,
  parseJsonCiphertext,
} from "../modes/pilot/cipher.ts";

/** Asserts that `run` throws a CliError with `code` and a message matching `pattern`. */
function assertCliError(
  run: () => unknown,
  code: number,
  pattern?: RegExp,
): CliError {
  try {
    run();
  } catch (e) {
    assert.ok(e instanceof CliError, `expected CliError, got ${e}`);
    assert.equal(e.exitCode, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), "one sentence, one line");
    return e;
  }
  throw new assert.AssertionError({ message: "expected a CliError" });
}

const GET_SPEC = {
  name: "secret get",
  help: "help text",
  args: "<path> [key]",
  options: { version: { type: "string" as const, short: "v" } },
  minPositionals: 1,
  maxPositionals: 2,
};

Deno.test("parseCommand returns flags and positionals", () => {
  const parsed = parseCommand(GET_SPEC, ["apps/db", "user", "-v", "3"]);
  assert.deepEqual(parsed?.positionals, ["apps/db", "user"]);
  assert.equal(parsed?.values.version, "3");
});

Deno.test("parseCommand reads Go-style flags as upstream's Go CLI users write them", () => {
  const spec = {
    ...GET_SPEC,
    options: {
      version: { type: "string" as const, short: "v" },
      format: { type: "string" as const, short: "f" },
    },
  };
  for (
    const args of [
      ["apps/db", "-format=json", "-version=3"],
      ["apps/db", "-format", "json", "-version", "3"],
      ["apps/db", "-f=json", "-v=3"],
      ["apps/db", "-fjson", "-v3"],
      ["apps/db", "--format=json", "--version=3"],
    ]
  ) {
    const parsed = parseCommand(spec, args);
    assert.equal(parsed?.values.format, "json", args.join(" "));
    assert.equal(parsed?.values.version, "3", args.join(" "));
    assert.deepEqual(parsed?.positionals, ["apps/db"]);
  }
  // After "--" nothing is a flag.
  assert.deepEqual(
    parseCommand(spec, ["--", "-format=json"])?.positionals,
    ["-format=json"],
  );
  // A single-dash word that is no option is refused by its name, not as -o.
  const e = assertCliError(
    () => parseCommand(spec, ["apps/db", "-ormat=hunter2"]),
    ExitCode.Usage,
    /^Unknown option -ormat for "spike pilot secret get": long options take two dashes/,
  );
  assert.ok(!e.message.includes("hunter2"));
});

Deno.test("normalizeGoStyleFlags leaves bundled short flags and values alone", () => {
  const options = { file: { short: "f" }, json: {} };
  assert.deepEqual(
    normalizeGoStyleFlags(["-fx.txt", "-json", "-f=y", "-h", "x=-1"], options),
    ["-fx.txt", "--json", "--file=y", "-h", "x=-1"],
  );
  assert.deepEqual(normalizeGoStyleFlags(["-help"], {}), ["--help"]);
});

Deno.test("parseCommand refuses an unknown option with exit code 2", () => {
  assertCliError(
    () => parseCommand(GET_SPEC, ["apps/db", "--bogus"]),
    ExitCode.Usage,
    /^Unknown option --bogus for "spike pilot secret get"/,
  );
});

Deno.test("parseCommand names the long flag whose value is missing", () => {
  assertCliError(
    () => parseCommand(GET_SPEC, ["apps/db", "-v"]),
    ExitCode.Usage,
    /^Option --version needs a value$/,
  );
  assertCliError(
    () => parseCommand(GET_SPEC, ["apps/db", "-v", "-1"]),
    ExitCode.Usage,
    /--version=<value>/,
  );
});

Deno.test("parseCommand refuses a value on a switch", () => {
  assertCliError(
    () => parseCommand(GET_SPEC, ["apps/db", "--help=yes"]),
    ExitCode.Usage,
    /^Option --help does not take a value$/,
  );
});

Deno.test("parseCommand refuses a single-value flag given twice", () => {
  const spec = {
    name: "policy create",
    help: "help text",
    options: {
      name: { type: "string" as const },
      format: { type: "string" as const, short: "f" },
      yes: { type: "boolean" as const },
      versions: { type: "string" as const, short: "v", multiple: true },
    },
  };
  for (
    const [args, flag] of [
      [["--name", "d1", "--name", "d2"], "--name"],
      [["--name=d1", "--name", "d1"], "--name"],
      [["-f", "json", "--format", "yaml"], "--format"],
      [["-f", "json", "-f", "json"], "--format"],
      [["--yes", "--yes"], "--yes"],
    ] as const
  ) {
    assertCliError(
      () => parseCommand(spec, [...args]),
      ExitCode.Usage,
      new RegExp(`^Option ${flag} is given more than once: give it once$`),
    );
  }
  // Flags declared multiple collect every value.
  assert.deepEqual(
    parseCommand(spec, ["-v", "1", "--versions", "2,3"])?.values.versions,
    ["1", "2,3"],
  );
  // A value that looks like the flag is not a second use.
  assert.equal(
    parseCommand(spec, ["--name=--name", "-f", "json"])?.values.name,
    "--name",
  );
});

Deno.test("parseCommand counts positional arguments", () => {
  assertCliError(
    () => parseCommand(GET_SPEC, []),
    ExitCode.Usage,
    /needs <path> \[key\]/,
  );
  assertCliError(
    () => parseCommand(GET_SPEC, ["a", "b", "c"]),
    ExitCode.Usage,
    /takes at most 2 arguments/,
  );
  assertCliError(
    () => parseCommand({ name: "secret list", help: "" }, ["extra"]),
    ExitCode.Usage,
    /takes no arguments, got "extra"/,
  );
});

Deno.test("parseCommand prints help and returns undefined for --help and -h", () => {
  const log = console.log;
  const printed: unknown[] = [];
  console.log = (...args: unknown[]) => printed.push(...args);
  try {
    assert.equal(parseCommand(GET_SPEC, ["--help"]), undefined);
    // Help wins even when the rest would be invalid.
    assert.equal(parseCommand(GET_SPEC, ["-h"]), undefined);
  } finally {
    console.log = log;
  }
  assert.deepEqual(printed, ["help text", "help text"]);
});

Deno.test("parseFormat accepts upstream's names and aliases", () => {
  assert.equal(parseFormat(undefined), "human");
  for (
    const [text, format] of [
      ["human", "human"],
      ["h", "human"],
      ["plain", "human"],
      ["p", "human"],
      ["json", "json"],
      ["J", "json"],
      ["yaml", "yaml"],
      ["y", "yaml"],
    ] as const
  ) {
    assert.equal(parseFormat(text), format);
  }
  assertCliError(
    () => parseFormat("xml"),
    ExitCode.Usage,
    /Unknown format "xml"/,
  );
});

Deno.test("parseVersion takes whole numbers within 32 bits", () => {
  assert.equal(parseVersion(undefined), undefined);
  assert.equal(parseVersion("0"), 0);
  assert.equal(parseVersion(" 12 "), 12);
  assertCliError(
    () => parseVersion("1.5"),
    ExitCode.Usage,
    /--version must be a whole number/,
  );
  assertCliError(() => parseVersion("-1"), ExitCode.Usage);
  assertCliError(() => parseVersion("2147483648"), ExitCode.Usage);
  assertCliError(() => parseVersion("x", "--cas"), ExitCode.Usage, /^--cas /);
});

Deno.test("parseVersionList trims entries, so '1, 2' keeps both versions", () => {
  assert.deepEqual(parseVersionList(["1, 2"]), [1, 2]);
  assert.deepEqual(parseVersionList([" 3 ,4,3"]), [3, 4]);
  assert.deepEqual(parseVersionList(["1", "2,5"]), [1, 2, 5]);
  assert.deepEqual(parseVersionList([]), []);
});

Deno.test("parseVersionList refuses empty entries and non-numbers", () => {
  assertCliError(
    () => parseVersionList(["1,,2"]),
    ExitCode.Usage,
    /empty entry/,
  );
  assertCliError(() => parseVersionList(["1,"]), ExitCode.Usage, /empty entry/);
  assertCliError(() => parseVersionList(["1,two"]), ExitCode.Usage, /"two"/);
  assertCliError(() => parseVersionList(["-3"]), ExitCode.Usage);
});

Deno.test("parsePermissionList trims, orders and refuses unknown permissions", () => {
  assert.deepEqual(parsePermissionList("write, read"), ["read", "write"]);
  assert.deepEqual(parsePermissionList("super,super"), ["super"]);
  assertCliError(
    () => parsePermissionList("read,fly"),
    ExitCode.Usage,
    /unknown permission "fly"/,
  );
  assertCliError(() => parsePermissionList(" , "), ExitCode.Usage, /non-empty/);
});

Deno.test("parseKeyValuePairs splits at the first '='", () => {
  const values = parseKeyValuePairs([
    "user=admin",
    "url=a=b",
    "empty=",
    "my key=x",
    "tls.crt=pem",
  ]);
  assert.deepEqual(values, {
    user: "admin",
    url: "a=b",
    empty: "",
    "my key": "x",
    "tls.crt": "pem",
  });
});

Deno.test("parseKeyValuePairs keeps __proto__ as an ordinary key", () => {
  const values = parseKeyValuePairs(["__proto__=x"]);
  assert.equal(Object.getPrototypeOf(values), Object.prototype);
  assert.equal(JSON.stringify(values), '{"__proto__":"x"}');
});

Deno.test("parseKeyValuePairs errors never repeat a value", () => {
  const e = assertCliError(
    () => parseKeyValuePairs(["a=1", "hunter2"]),
    ExitCode.Usage,
    /argument 2 is not a key=value pair/,
  );
  assert.ok(!e.message.includes("hunter2"));
  assertCliError(() => parseKeyValuePairs(["=v"]), ExitCode.Usage, /empty key/);
  assertCliError(
    () => parseKeyValuePairs(["a=1", "a=2"]),
    ExitCode.Usage,
    /"a" is given twice/,
  );
  assertCliError(
    () => parseKeyValuePairs(["a/b=1"]),
    ExitCode.Usage,
    /Invalid key "a\/b"/,
  );
  assertCliError(
    () => parseKeyValuePairs(["..=1"]),
    ExitCode.Usage,
    /Invalid key "\.\."/,
  );
  assertCliError(() => parseKeyValuePairs([]), ExitCode.Usage, /at least one/);
});

Deno.test("checkSecretPath applies nexus's path rules before any call", () => {
  assert.equal(checkSecretPath("apps/web/db"), "apps/web/db");
  assertCliError(
    () => checkSecretPath("/apps"),
    ExitCode.Usage,
    /^Invalid secret path "\/apps"/,
  );
  assertCliError(
    () => checkSecretPath("a//b"),
    ExitCode.Usage,
    /empty segments/,
  );
  assertCliError(() => checkSecretPath("a/../b"), ExitCode.Usage);
  assertCliError(
    () => checkSecretPath("spike/system/x"),
    ExitCode.Usage,
    /reserved/,
  );
  assertCliError(() => checkSecretPath("a b"), ExitCode.Usage);
});

Deno.test("policyFromFlags names every missing flag", () => {
  assertCliError(
    () => policyFromFlags({ name: "web" }),
    ExitCode.Usage,
    /^Missing --spiffeid-pattern, --path-pattern, --permissions/,
  );
});

Deno.test("policyFromFlags validates the patterns and permissions", () => {
  const policy = policyFromFlags({
    name: "web",
    "spiffeid-pattern": "^spiffe://spike\\.ist/web/.*$",
    "path-pattern": "^apps/web/.*$",
    permissions: "list, read",
  });
  assert.deepEqual(policy, {
    name: "web",
    spiffeidPattern: "^spiffe://spike\\.ist/web/.*$",
    pathPattern: "^apps/web/.*$",
    permissions: ["read", "list"],
  });
  const base = {
    name: "web",
    "spiffeid-pattern": "^spiffe://x/.*$",
    "path-pattern": "^a$",
    permissions: "read",
  };
  assertCliError(
    () => policyFromFlags({ ...base, "spiffeid-pattern": ".*" }),
    ExitCode.Usage,
    /^Invalid --spiffeid-pattern/,
  );
  assertCliError(
    () => policyFromFlags({ ...base, "path-pattern": "(a+)+" }),
    ExitCode.Usage,
    /^Invalid --path-pattern/,
  );
  assertCliError(
    () => policyFromFlags({ ...base, name: "web/1" }),
    ExitCode.Usage,
    /^Invalid --name/,
  );
});

Deno.test("cipher decrypt checks stream input before calling nexus", () => {
  assertCliError(
    () => checkStreamCiphertext(new Uint8Array(20)),
    ExitCode.Usage,
    /shorter than version, nonce and tag/,
  );
  const wrongVersion = new Uint8Array(40);
  wrongVersion[0] = 0x7b;
  assertCliError(
    () => checkStreamCiphertext(wrongVersion),
    ExitCode.Usage,
    /needs --json/,
  );
  const ok = new Uint8Array(29);
  ok[0] = 1;
  checkStreamCiphertext(ok);
});

Deno.test("cipher decrypt --json reads the object encrypt --json prints", () => {
  const text = JSON.stringify(
    {
      version: 1,
      nonce: new Uint8Array(12).toBase64(),
      ciphertext: new Uint8Array(20).toBase64(),
    },
    null,
    2,
  );
  const parsed = parseJsonCiphertext(new TextEncoder().encode(text));
  assert.equal(parsed.version, 1);
  // Blanks and missing padding decode; nexus gets canonical base64.
  assert.deepEqual(
    parseJsonCiphertext(new TextEncoder().encode(JSON.stringify({
      version: 1,
      nonce: ` ${"A".repeat(16)}`,
      ciphertext: "YWJjZA",
    }))),
    { version: 1, nonce: "A".repeat(16), ciphertext: "YWJjZA==" },
  );
  const bad = (value: unknown) =>
    parseJsonCiphertext(new TextEncoder().encode(JSON.stringify(value)));
  assertCliError(
    () => bad({ ...parsed, version: 2 }),
    ExitCode.Usage,
    /"version"/,
  );
  assertCliError(
    () => bad({ ...parsed, nonce: "AAAA" }),
    ExitCode.Usage,
    /12 bytes/,
  );
  assertCliError(
    () => bad({ ...parsed, ciphertext: "*" }),
    ExitCode.Usage,
    /"ciphertext"/,
  );
  assertCliError(() => bad([1]), ExitCode.Usage, /JSON object/);
  assertCliError(
    () =>
      parseJsonCiphertext(
        new TextEncoder().encode(
          `{"version":1,"nonce":"${parsed.nonce}","ciphertext":"${parsed.ciphertext}","nonce":"${parsed.nonce}"}`,
        ),
      ),
    ExitCode.Usage,
    /repeats a key/,
  );
  assertCliError(
    () => parseJsonCiphertext(new TextEncoder().encode("nope")),
    ExitCode.Usage,
    /not JSON/,
  );
});
