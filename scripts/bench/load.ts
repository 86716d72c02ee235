// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Runs the load generator as a separate process with scoped permissions
 * and samples the server's CPU time and peak memory over the measured
 * window; the generator reports its own CPU time over the same window.
 *
 * @module
 */
import { type LoadConfig, type LoadResult, START_MARKER } from "./load_spec.ts";
import { resetPeak, sample } from "./proc_stats.ts";

const CLIENT = new URL("./load_client.ts", import.meta.url).pathname;

/** The server's cost over a measured window. */
export interface ServerCost {
  /** CPU time spent by the server, in milliseconds. */
  readonly cpuMs: number;
  /** Server CPU time per successful request, in microseconds. */
  readonly cpuUsPerRequest: number;
  /** Peak resident memory during the window, in MiB. */
  readonly peakRssMb: number;
  /** The window on the system's monotonic clock, seconds (see `sample`). */
  readonly window: { readonly startS: number; readonly endS: number };
}

/** The load generator's own cost over the same window. */
export interface ClientCost {
  /** Client CPU time per successful request, in microseconds. */
  readonly cpuUsPerRequest: number;
  /** Share of one core the client kept busy (1: one core all the time). */
  readonly cores: number;
}

/** A load run with the server's and the client's cost. */
export interface Measured {
  /** What the load generator saw. */
  readonly load: LoadResult;
  /** What the server spent. */
  readonly server: ServerCost;
  /** What the load generator spent. */
  readonly client: ClientCost;
}

/** Raised when the load generator fails or its requests do. */
export class LoadError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "LoadError";
  }
}

async function* lines(stream: ReadableStream<Uint8Array>) {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf("\n")) !== -1) {
      yield pending.slice(0, nl);
      pending = pending.slice(nl + 1);
    }
  }
  if (pending !== "") yield pending;
}

/**
 * Runs one load against a server process and measures it.
 *
 * @param config what to send
 * @param serverPid the server's process id, sampled in `/proc`
 * @param allowErrors accept failed requests (the recovery poller does);
 *   otherwise any failure raises
 * @returns the load figures and the server's cost
 * @throws {LoadError} when the generator fails or a request fails
 */
export async function runLoad(
  config: LoadConfig,
  serverPid: number,
  allowErrors = false,
): Promise<Measured> {
  const host = new URL(config.url).host;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      `--allow-read=${config.svidDir}`,
      `--allow-net=${host}`,
      "--allow-env=SPIKE_*",
      CLIENT,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(config)));
  await writer.close();
  let before = await sample(serverPid);
  let result: LoadResult | undefined;
  for await (const line of lines(child.stdout)) {
    if (line === START_MARKER) {
      await resetPeak(serverPid);
      before = await sample(serverPid);
    } else if (line.startsWith("{")) {
      result = JSON.parse(line) as LoadResult;
    }
  }
  const after = await sample(serverPid);
  const status = await child.status;
  const errText = await stderr;
  if (!status.success || result === undefined) {
    throw new LoadError(
      `Load generator failed (exit ${status.code}): ${errText.slice(0, 500)}`,
    );
  }
  if (!allowErrors && result.errors > 0) {
    throw new LoadError(
      `${result.errors} requests failed; first: ${result.firstError}`,
    );
  }
  const cpuMs = after.cpuMs - before.cpuMs;
  return {
    load: result,
    server: {
      cpuMs,
      cpuUsPerRequest: result.ok > 0 ? cpuMs * 1000 / result.ok : 0,
      peakRssMb: after.hwmKb / 1024,
      window: { startS: before.monotonicS, endS: after.monotonicS },
    },
    client: {
      cpuUsPerRequest: result.ok > 0 ? result.cpuMs * 1000 / result.ok : 0,
      cores: result.elapsedMs > 0 ? result.cpuMs / result.elapsedMs : 0,
    },
  };
}
