// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `spike pilot cipher encrypt|decrypt`: encryption as a service. Input from
 * a file or stdin, output to a file or stdout. Stream mode (default) sends
 * raw bytes and gets `0x01 ‖ nonce ‖ ciphertext ‖ tag` back; `--json` mode
 * prints and reads the whole `{version, nonce, ciphertext}` object, so each
 * mode round-trips on its own.
 *
 * @module
 */
import { zero } from "../../lib/crypto/zero.ts";
import { parseJsonBytes } from "../../lib/wire/json_bytes.ts";
import {
  booleanFlag,
  dispatchSubcommand,
  parseCommand,
  stringFlag,
} from "./args.ts";
import { CliError, usageError } from "./cli_error.ts";
import { ExitCode } from "./exit_codes.ts";
import { type CallContext, withNexus } from "./nexus.ts";
import { openInputFile, readAllLimited } from "./input_file.ts";
import { writeStdout } from "./output.ts";

/** Help of `spike pilot cipher`. */
export const CIPHER_HELP =
  `Encrypt and decrypt data with SPIKE Nexus's cipher key (AES-256-GCM).
The key never leaves nexus.

Usage:
  spike pilot cipher encrypt [-f in] [-o out] [--json]
  spike pilot cipher decrypt [-f in] [-o out] [--json]

Run "spike pilot cipher <command> --help" for details.`;

const COMMON_OPTIONS =
  `  -f, --file F   read the input from F (default: stdin; "-" is stdin)
  -o, --out F    write the output to F, created with mode 0600
                 (default: stdout; "-" is stdout; encrypt refuses to write
                 binary to a terminal)`;

const ENCRYPT_HELP = `Encrypt data.

Usage:
  spike pilot cipher encrypt [-f in] [-o out] [--json]

Options:
${COMMON_OPTIONS}
  --json         JSON mode: output {"version", "nonce", "ciphertext"}
                 (base64) instead of raw bytes 0x01 ‖ nonce ‖ ciphertext
  -h, --help     show this help

Example:
  spike pilot cipher encrypt -f secret.txt -o secret.bin
  spike pilot cipher decrypt -f secret.bin`;

const DECRYPT_HELP = `Decrypt data encrypted by "spike pilot cipher encrypt".

Usage:
  spike pilot cipher decrypt [-f in] [-o out] [--json]

Options:
${COMMON_OPTIONS}
  --json         JSON mode: the input is the {"version", "nonce",
                 "ciphertext"} object that "encrypt --json" prints
  -h, --help     show this help`;

/** The cipher format version nexus speaks. */
export const CIPHER_VERSION = 1;
/** AES-GCM nonce length. */
export const NONCE_BYTES = 12;
/** AES-GCM tag length. */
export const TAG_BYTES = 16;
/** The most input pilot reads (nexus's own limit is usually far lower). */
export const MAX_INPUT_BYTES = 16 * 1024 * 1024;

const OPTIONS = {
  file: { type: "string", short: "f" },
  out: { type: "string", short: "o" },
  json: { type: "boolean" },
} as const;

/**
 * Reads the whole input of a cipher command.
 *
 * @param file a file name, `-` or `undefined` for stdin
 * @returns the bytes; the caller zeroes them
 * @throws {CliError} (exit code 2) for a missing file or oversized input
 */
export async function readInput(file: string | undefined): Promise<Uint8Array> {
  if (file === undefined || file === "-") {
    return await readAllLimited(
      Deno.stdin.readable,
      MAX_INPUT_BYTES,
      "The input on stdin",
    );
  }
  const handle = await openInputFile(file, "Input file");
  return await readAllLimited(
    handle.readable,
    MAX_INPUT_BYTES,
    `Input file "${file}"`,
  );
}

/**
 * Writes a cipher command's output; files are created with mode 0600.
 *
 * @param file a file name, `-` or `undefined` for stdout
 * @param data the bytes
 */
export async function writeOutput(
  file: string | undefined,
  data: Uint8Array,
): Promise<void> {
  if (file === undefined || file === "-") {
    await writeStdout(data);
    return;
  }
  try {
    await Deno.writeFile(file, data, { mode: 0o600 });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw usageError(`Cannot write "${file}": its folder does not exist`);
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw usageError(`Cannot write "${file}": it is a directory`);
    }
    throw e;
  }
}

/**
 * Checks that bytes look like stream-mode ciphertext.
 *
 * @param data the input
 * @throws {CliError} (exit code 2) when too short or of another version
 */
export function checkStreamCiphertext(data: Uint8Array): void {
  if (data.length < 1 + NONCE_BYTES + TAG_BYTES) {
    throw usageError(
      `The input is not SPIKE ciphertext: it is ${data.length} bytes, shorter than version, nonce and tag (${
        1 + NONCE_BYTES + TAG_BYTES
      })`,
    );
  }
  if (data[0] !== CIPHER_VERSION) {
    throw usageError(
      `The input is not SPIKE ciphertext: it starts with version byte ${
        data[0]
      }, expected ${CIPHER_VERSION} (JSON input needs --json)`,
    );
  }
}

/** The JSON form of a ciphertext. */
export interface JsonCiphertext {
  /** Format version (1). */
  version: number;
  /** Base64 nonce (12 bytes). */
  nonce: string;
  /** Base64 ciphertext with its tag. */
  ciphertext: string;
}

function decodeBase64(text: string): Uint8Array | undefined {
  try {
    return Uint8Array.fromBase64(text);
  } catch {
    return undefined;
  }
}

/**
 * Reads the `{version, nonce, ciphertext}` object `encrypt --json` prints.
 * Base64 is read leniently (blanks, missing padding) and returned in
 * canonical form.
 *
 * @param input the input bytes (UTF-8 JSON)
 * @returns the object, checked, with canonical base64
 * @throws {CliError} (exit code 2) naming what is wrong
 */
export function parseJsonCiphertext(input: Uint8Array): JsonCiphertext {
  let value: unknown;
  try {
    // Duplicate keys are refused, as nexus refuses them.
    value = parseJsonBytes(input);
  } catch {
    throw usageError(
      'The input is not JSON (or repeats a key): --json decrypt reads the {"version", "nonce", "ciphertext"} object "encrypt --json" prints',
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw usageError(
      'The input must be a JSON object with "version", "nonce" and "ciphertext"',
    );
  }
  const { version, nonce, ciphertext } = value as Record<string, unknown>;
  if (version !== CIPHER_VERSION) {
    throw usageError(
      `The input's "version" must be ${CIPHER_VERSION}`,
    );
  }
  if (typeof nonce !== "string") {
    throw usageError('The input\'s "nonce" must be a base64 string');
  }
  const nonceBytes = decodeBase64(nonce);
  if (nonceBytes?.length !== NONCE_BYTES) {
    throw usageError(
      `The input's "nonce" must be ${NONCE_BYTES} bytes in base64`,
    );
  }
  const ciphertextBytes = typeof ciphertext === "string"
    ? decodeBase64(ciphertext)
    : undefined;
  if (ciphertextBytes === undefined) {
    throw usageError('The input\'s "ciphertext" must be a base64 string');
  }
  // Nexus reads base64 strictly: send the canonical form of what decoded
  // here (blanks and missing padding are accepted), not the input text.
  return {
    version,
    nonce: nonceBytes.toBase64(),
    ciphertext: ciphertextBytes.toBase64(),
  };
}

const DECRYPT_CONTEXT: CallContext = {
  badRequest: "SPIKE Nexus could not decrypt the input",
};

const ENCRYPT_CONTEXT: CallContext = {
  badRequest: "SPIKE Nexus refused to encrypt the input",
};

async function encrypt(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "cipher encrypt",
    help: ENCRYPT_HELP,
    options: OPTIONS,
  }, args);
  if (!parsed) return 0;
  const out = stringFlag(parsed.values, "out");
  const json = booleanFlag(parsed.values, "json");
  if (!json && (out === undefined || out === "-") && Deno.stdout.isTerminal()) {
    // Raw ciphertext would garble the terminal and cannot be copied back.
    throw usageError(
      "Refusing to write binary ciphertext to a terminal: give -o FILE, redirect stdout to a file, or use --json for text",
    );
  }
  const input = await readInput(stringFlag(parsed.values, "file"));
  try {
    if (json) {
      const answer = await withNexus((nexus) =>
        nexus.json("/v1/cipher/encrypt", {
          plaintext: input.toBase64(),
        }, ENCRYPT_CONTEXT)
      );
      const { version, nonce, ciphertext } = answer;
      if (
        version !== CIPHER_VERSION || typeof nonce !== "string" ||
        typeof ciphertext !== "string"
      ) {
        throw new CliError(
          "SPIKE Nexus answered with an unexpected JSON shape",
        );
      }
      const text = `${
        JSON.stringify({ version, nonce, ciphertext }, null, 2)
      }\n`;
      await writeOutput(out, new TextEncoder().encode(text));
    } else {
      const { body } = await withNexus((nexus) =>
        nexus.post(
          "/v1/cipher/encrypt",
          input,
          ENCRYPT_CONTEXT,
          "application/octet-stream",
        )
      );
      await writeOutput(out, body);
    }
  } finally {
    zero(input);
  }
  return ExitCode.Ok;
}

async function decrypt(args: string[]): Promise<number> {
  const parsed = parseCommand({
    name: "cipher decrypt",
    help: DECRYPT_HELP,
    options: OPTIONS,
  }, args);
  if (!parsed) return 0;
  const out = stringFlag(parsed.values, "out");
  const input = await readInput(stringFlag(parsed.values, "file"));
  let plaintext: Uint8Array | undefined;
  try {
    if (booleanFlag(parsed.values, "json")) {
      const request = parseJsonCiphertext(input);
      const answer = await withNexus((nexus) =>
        nexus.json("/v1/cipher/decrypt", request, DECRYPT_CONTEXT)
      );
      plaintext = typeof answer.plaintext === "string"
        ? decodeBase64(answer.plaintext)
        : undefined;
      if (plaintext === undefined) {
        throw new CliError(
          "SPIKE Nexus answered with an unexpected JSON shape",
        );
      }
    } else {
      checkStreamCiphertext(input);
      plaintext = (await withNexus((nexus) =>
        nexus.post(
          "/v1/cipher/decrypt",
          input,
          DECRYPT_CONTEXT,
          "application/octet-stream",
        )
      )).body;
    }
    await writeOutput(out, plaintext);
  } finally {
    zero(input, plaintext);
  }
  return ExitCode.Ok;
}

/**
 * Runs `spike pilot cipher …`.
 *
 * @param args the arguments after `cipher`
 * @returns the exit code
 */
export function runCipher(args: string[]): Promise<number> {
  return dispatchSubcommand("cipher", CIPHER_HELP, { encrypt, decrypt }, args);
}
