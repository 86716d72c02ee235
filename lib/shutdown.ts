// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Waiting for a polite stop (SIGINT or SIGTERM).
 *
 * @module
 */

/**
 * Resolves on the first SIGINT or SIGTERM, then removes its listeners.
 *
 * @returns a promise that resolves with the signal name
 */
export function waitForShutdown(): Promise<Deno.Signal> {
  return new Promise((resolve) => {
    const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
    const handlers = signals.map((signal) => {
      const handler = () => {
        signals.forEach((s, i) => Deno.removeSignalListener(s, handlers[i]!));
        resolve(signal);
      };
      Deno.addSignalListener(signal, handler);
      return handler;
    });
  });
}
