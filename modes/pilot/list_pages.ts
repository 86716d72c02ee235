// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Listing through nexus's keyset pages: pilot asks for the largest page
 * and follows `next` until the last page, so a list of any size arrives
 * whole. A nexus without pages (upstream's) answers everything at once,
 * with no cursor, and the loop ends after one call.
 *
 * @module
 */
import { MAX_LIST_PAGE } from "../../lib/wire/list_page.ts";
import { CliError } from "./cli_error.ts";
import type { CallContext, NexusSession } from "./nexus.ts";

/**
 * Reads every page of a list route.
 *
 * @param nexus the session
 * @param route the list route, e.g. `/v1/store/secrets?action=list`
 * @param request the request fields besides the page (filters, prefix)
 * @param keysOf the keys of one answer
 * @param context how to word failures
 * @returns every key, in the order nexus sent them
 * @throws {CliError} for a failed call, or a cursor that does not move on
 */
export async function listAllPages(
  nexus: NexusSession,
  route: string,
  request: Record<string, unknown>,
  keysOf: (answer: Record<string, unknown>) => string[],
  context: CallContext = {},
): Promise<string[]> {
  const keys: string[] = [];
  let after = "";
  for (;;) {
    const answer = await nexus.json(
      route,
      { ...request, after, limit: MAX_LIST_PAGE },
      context,
    );
    keys.push(...keysOf(answer));
    const next = answer.next;
    if (typeof next !== "string") return keys;
    // Keyset pages only move forward; anything else would loop forever.
    if (next <= after) {
      throw new CliError(
        "SPIKE Nexus answered a list page with a cursor that does not move forward",
      );
    }
    after = next;
  }
}

/**
 * The string elements of a list field of an answer.
 *
 * @param value the field, e.g. `answer.keys`
 * @returns its strings; nothing for anything but an array
 */
export function stringsOf(value: unknown): string[] {
  return Array.isArray(value)
    ? value.filter((k): k is string => typeof k === "string")
    : [];
}
