// Copyright 2026 the SPIKE for Deno authors. MIT license.
// A Node.js program using the built SDK package against a real nexus, as an
// application would. Prints one JSON line per checked outcome; the test
// that runs it (tests/sdk_node_test.ts) asserts them. SPIKE_NEXUS_API_URL
// and SPIKE_SVID_DIR come from the environment; ROTATED_ID is the SPIFFE ID
// the SVID directory is rotated to while the program waits on stdin.
import {
  Spike,
  SpikeDeniedError,
  SpikeError,
  SpikeNotFoundError,
  zero,
} from "@spike/sdk";
import process from "node:process";
import { once } from "node:events";

const report = (step, value) =>
  process.stdout.write(JSON.stringify({ step, value }) + "\n");

const spike = await Spike.connect();
try {
  report("runtime", `node ${process.versions.node}`);
  report("identity", spike.spiffeId);

  await spike.put("apps/node/db", { user: "orders", password: "n0de-pass" });
  const secret = await spike.get("apps/node/db");
  report("get", secret.toRecord());
  secret.zero();
  const bytes = await spike.getValue("apps/node/db", "password");
  report("getValue-bytes", bytes instanceof Uint8Array && bytes.length);
  zero(bytes);
  report("getValue-zeroed", bytes.every((b) => b === 0));

  await spike.put("apps/node/db", { user: "orders", password: "second" });
  const meta = await spike.metadata("apps/node/db");
  report("metadata", {
    current: meta.currentVersion,
    versions: meta.versions.map((v) => v.version),
  });
  await spike.delete("apps/node/db", { versions: [2] });
  report(
    "after-delete",
    await spike.getValue("apps/node/db", "password", { as: "text" }),
  );
  await spike.undelete("apps/node/db", { versions: [2] });
  report(
    "after-undelete",
    await spike.getValue("apps/node/db", "password", { as: "text" }),
  );
  report("list", await spike.list({ prefix: "apps/node/" }));

  const plain = new TextEncoder().encode("node cipher");
  const sealed = await spike.encrypt(plain);
  const opened = await spike.decrypt(sealed);
  report("cipher", new TextDecoder().decode(opened));

  for (
    const [step, call] of [
      ["denied", () => spike.get("apps/forbidden/x")],
      ["not-found", () => spike.get("apps/node/missing")],
    ]
  ) {
    try {
      await call();
      report(step, "no error");
    } catch (e) {
      report(step, {
        name: e.name,
        code: e.code,
        base: e instanceof SpikeError,
        typed: e instanceof SpikeDeniedError || e instanceof SpikeNotFoundError,
      });
    }
  }

  const stop = new AbortController();
  for await (const s of spike.watch("apps/node/db", { signal: stop.signal })) {
    report("watch", { version: s.version, password: s.text("password") });
    s.zero();
    stop.abort();
  }

  // SVID rotation: the test rewrites the SVID directory once told to.
  report("rotate", "ready");
  await once(process.stdin, "data");
  const deadline = Date.now() + 30_000;
  while (spike.spiffeId !== process.env.ROTATED_ID && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  report("rotated", spike.spiffeId);
  report(
    "after-rotation",
    await spike.getValue("apps/node/db", "user", { as: "text" }),
  );
} finally {
  await spike.close();
}
report("done", true);
