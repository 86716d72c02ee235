// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Reading the files and streams pilot commands take as input: a file that
 * must exist and not be a folder, and a stream read whole up to a limit.
 *
 * @module
 */
import { zero } from "../../lib/crypto/zero.ts";
import { usageError } from "./cli_error.ts";

/**
 * Opens an input file for reading.
 *
 * @param file the file name
 * @param what how to name it, e.g. `Input file`
 * @returns the open file; the caller closes it
 * @throws {CliError} (exit code 2) when it does not exist or is a folder
 */
export async function openInputFile(
  file: string,
  what: string,
): Promise<Deno.FsFile> {
  let handle: Deno.FsFile;
  try {
    handle = await Deno.open(file, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw usageError(`${what} "${file}" does not exist`);
    }
    throw e;
  }
  try {
    if ((await handle.stat()).isDirectory) {
      throw usageError(`${what} "${file}" is a directory`);
    }
  } catch (e) {
    handle.close();
    throw e;
  }
  return handle;
}

/**
 * Reads a stream whole, refusing more than `max` bytes. The chunks are
 * zeroed once copied.
 *
 * @param reader the stream
 * @param max the most bytes accepted
 * @param what how to name the input, e.g. `The input on stdin`
 * @returns the bytes; the caller zeroes them
 * @throws {CliError} (exit code 2) when the input is larger than `max`
 */
export async function readAllLimited(
  reader: ReadableStream<Uint8Array>,
  max: number,
  what: string,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of reader) {
      total += chunk.length;
      if (total > max) throw usageError(`${what} is larger than ${max} bytes`);
      chunks.push(chunk);
    }
    const out = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  } finally {
    zero(...chunks);
  }
}
