// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Tests that change this process's environment, and put it back.

/**
 * Runs `fn` with these variables set (undefined: unset), then restores
 * their previous values, whatever `fn` does.
 *
 * @param vars the variables to change
 * @param fn the work to run with them
 */
export async function withEnv(
  vars: Record<string, string | undefined>,
  fn: () => void | Promise<void>,
): Promise<void> {
  const saved = Object.fromEntries(
    Object.keys(vars).map((k) => [k, Deno.env.get(k)]),
  );
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  };
  apply(vars);
  try {
    await fn();
  } finally {
    apply(saved);
  }
}
