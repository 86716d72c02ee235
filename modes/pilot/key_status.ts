// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The key lines of `spike pilot status`: the root key's id and age, when
 * its recovery shards were last exported, a configured split that waits
 * for a rekey, the data-key terms with their encryption counts, and a
 * re-encryption's progress.
 *
 * @module
 */
import { formatTime } from "./output.ts";

type Status = Record<string, unknown>;

const count = (n: unknown) =>
  typeof n === "number" ? n.toLocaleString("en-US") : "?";

/**
 * How long ago a time was, in the largest whole unit.
 *
 * @param time an RFC 3339 time
 * @param now the current time, ms
 * @returns e.g. `3 days ago`, or "" for no time
 */
export function ago(time: unknown, now: number): string {
  if (typeof time !== "string") return "";
  const ms = now - Date.parse(time);
  if (!Number.isFinite(ms)) return "";
  const units: [number, string][] = [
    [86_400_000, "day"],
    [3_600_000, "hour"],
    [60_000, "minute"],
  ];
  for (const [size, name] of units) {
    const n = Math.floor(ms / size);
    if (n >= 1) return `${n} ${name}${n === 1 ? "" : "s"} ago`;
  }
  return "just now";
}

function when(time: unknown, now: number): string {
  return `${formatTime(time)} (${ago(time, now)})`;
}

/**
 * The key lines of a status answer; none for an answer without them (an
 * older nexus, or upstream).
 *
 * @param status the nexus answer
 * @param now the current time, ms
 * @returns the lines
 */
export function keyStatusLines(status: Status, now = Date.now()): string[] {
  const lines: string[] = [];
  const root = status.rootKey as Status | null | undefined;
  if (root) {
    lines.push(
      `Root key: ${root.id}${
        typeof root.created === "string"
          ? `, made ${when(root.created, now)}`
          : status.state === "unlocked"
          ? ", made before key ages were kept"
          : ""
      }${root.rekeyPending ? " (a rekey is in progress)" : ""}`,
    );
    if (status.state === "unlocked") {
      lines.push(
        typeof root.recoveryExported === "string"
          ? `Recovery: shards exported ${when(root.recoveryExported, now)}`
          : "Recovery: NO shards exported for this root key: run spike pilot operator recover",
      );
    }
  }
  const configured = status.configured as Status | null | undefined;
  if (
    configured && typeof status.shares === "number" &&
    (configured.shares !== status.shares ||
      configured.threshold !== status.threshold)
  ) {
    lines.push(
      `Config:   asks for ${configured.threshold} of ${configured.shares}: run spike pilot operator rekey to apply it`,
    );
  }
  const data = status.dataKeys as Status | null | undefined;
  if (data && Array.isArray(data.terms)) {
    const terms = data.terms as Status[];
    const active = terms.find((t) => t.term === data.activeTerm) ?? {};
    const older = terms.filter((t) => t.term !== data.activeTerm)
      .map((t) => t.term);
    lines.push(
      `Data key: term ${data.activeTerm} since ${formatTime(active.created)}, ${
        active.encryptions === null
          ? "encryptions not counted"
          : `${count(active.encryptions)} of ${
            count(data.maxEncryptions)
          } encryptions`
      }${older.length > 0 ? `; older terms kept: ${older.join(", ")}` : ""}`,
    );
    const r = data.reencrypt as Status | null;
    if (r) {
      const done = Number(r.done);
      const total = Number(r.total);
      const share = total > 0
        ? Math.min(100, Math.floor(done * 100 / total))
        : 100;
      lines.push(
        `Re-encrypting: terms below ${r.below}, ${count(done)} of ${
          count(total)
        } paths (${share} %), since ${formatTime(r.started)}`,
      );
    }
  }
  return lines;
}
