// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Shell text shared by `deno task up` and `deno task up --postgres`: the
 * commands they print must work as printed, from any folder.
 *
 * @module
 */

/**
 * One word for bash or zsh, quoted only when it needs to be.
 *
 * @param word the word
 * @returns the word as the shell reads it
 */
export function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word)
    ? word
    : `'${word.replaceAll("'", "'\\''")}'`;
}

/**
 * The shell function `spike` the printed commands use: `deno task -q`
 * (without `-q`, deno task echoes the command line, secret values
 * included, to stderr) with this repository's deno.json, so it works from
 * any folder.
 *
 * @param root the repository folder
 * @returns the function's definition, one line
 */
export function spikeFunction(root: string): string {
  return `spike() { deno task -q --config=${
    quote(`${root}/deno.json`)
  } spike "$@"; }`;
}
