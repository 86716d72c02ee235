// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * CPU time and memory of another process from Linux `/proc`: the benchmark
 * samples the server before and after each scenario, so the server's cost
 * is measured from outside, without instrumenting it.
 *
 * @module
 */

// Deno asks for --allow-all to touch another process's /proc files, so
// they are read and written by small helper processes instead (the
// benchmark runs with --allow-run).
/**
 * Reads a file under `/proc`.
 *
 * @param path e.g. `/proc/cpuinfo`
 * @returns its text
 * @throws when it cannot be read (for a process: it is gone)
 */
export async function readProcFile(path: string): Promise<string> {
  const out = await new Deno.Command("cat", {
    args: [path],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`Cannot read ${path}`);
  return new TextDecoder().decode(out.stdout);
}

/** Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** One sample of a process's counters. */
export interface ProcSample {
  /**
   * When the sample was taken: seconds of the system's monotonic clock
   * (`/proc/uptime`, 10 ms steps), the clock V8's CPU profiles stamp their
   * samples with.
   */
  readonly monotonicS: number;
  /** User plus system CPU time so far, in milliseconds. */
  readonly cpuMs: number;
  /** Resident memory now, in KiB. */
  readonly rssKb: number;
  /** Peak resident memory since start or the last {@linkcode resetPeak}, in KiB. */
  readonly hwmKb: number;
}

/**
 * Reads the CPU time and memory of a process.
 *
 * @param pid the process id
 * @returns the sample
 * @throws when the process is gone or `/proc` is not readable
 */
export async function sample(pid: number): Promise<ProcSample> {
  const uptime = await readProcFile("/proc/uptime");
  const stat = await readProcFile(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces: count fields after its ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = await readProcFile(`/proc/${pid}/status`);
  return {
    monotonicS: Number(uptime.split(" ")[0]),
    cpuMs: ticks * 1000 / TICKS_PER_SECOND,
    rssKb: statusKb(status, "VmRSS"),
    hwmKb: statusKb(status, "VmHWM"),
  };
}

function statusKb(status: string, name: string): number {
  const match = status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"));
  return match ? Number(match[1]) : 0;
}

/**
 * Resets the peak resident memory of a process to its current size, so a
 * scenario's peak is its own. Returns false when the kernel refuses (the
 * peak then counts from the process start).
 *
 * @param pid the process id
 * @returns whether the peak was reset
 */
export async function resetPeak(pid: number): Promise<boolean> {
  const out = await new Deno.Command("sh", {
    args: ["-c", 'echo 5 > "$1"', "sh", `/proc/${pid}/clear_refs`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}
