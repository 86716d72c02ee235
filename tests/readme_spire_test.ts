// Copyright 2026 the SPIKE for Deno authors. MIT license.
// Issue 11, point 5: the README's SPIRE registration is checked against
// SPIKE's own rules, so the commands an operator copies give each mode the
// identity it needs: every role is registered, with selectors that tell the
// modes of one binary apart (never unix:sha256), no process matches two
// SPIKE entries, the sudo commands that switch to recover and restore use
// those entries' users, and the systemd units run as the registered users
// with SPIKE_TRUST_ROOT and pinned keepers that nexus accepts.
import assert from "node:assert/strict";
import { hasRole, rolesOf } from "../lib/spiffe/roles.ts";
import { readNexusConfig } from "../modes/nexus/config.ts";
import { withEnv } from "./env_support.ts";

const README = await Deno.readTextFile(
  new URL("../README.md", import.meta.url),
);

/** The body of the first fenced block after `heading` whose text has `marker`. */
function block(heading: string, marker: string): string {
  const section = README.slice(README.indexOf(heading));
  const fences = [...section.matchAll(/```[a-z]*\n([\s\S]*?)```/g)];
  const found = fences.find((m) => m[1]!.includes(marker));
  assert.ok(found, `no block with ${marker} after ${heading}`);
  return found[1]!;
}

/** Shell lines with their `\` continuations joined. */
function commands(text: string): string[] {
  return text.replace(/\\\n\s*/g, " ").split("\n").map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

interface Entry {
  parent: string;
  id: string;
  selectors: string[];
}

const spire = commands(
  block("### Registering SPIKE in SPIRE", "spire-server entry create"),
);
const TD = /^TD=(\S+)$/.exec(spire.find((l) => l.startsWith("TD="))!)![1]!;
const ENTRIES: Entry[] = spire.filter((l) =>
  l.startsWith("spire-server entry create")
).map((line) => {
  const words = line.replaceAll("$TD", TD).replaceAll('"', "").split(/\s+/);
  const flag = (name: string) =>
    words.flatMap((w, i) => w === name ? [words[i + 1]!] : []);
  return {
    parent: flag("-parentID")[0]!,
    id: flag("-spiffeID")[0]!,
    selectors: flag("-selector"),
  };
});

Deno.test("the README registers every SPIKE role and a workload in SPIRE", async () => {
  await withEnv({ SPIKE_TRUST_ROOT: TD }, () => {
    const roles = ENTRIES.map((e) => rolesOf(e.id));
    for (const role of ["nexus", "superuser", "recover", "restore"] as const) {
      assert.equal(
        roles.filter((r) => r.includes(role)).length,
        1,
        `entries for ${role}`,
      );
    }
    const keepers = ENTRIES.filter((e) => hasRole(e.id, "keeper"));
    assert.ok(keepers.length >= 3);
    assert.equal(new Set(keepers.map((k) => k.id)).size, keepers.length);
    assert.equal(new Set(keepers.map((k) => k.parent)).size, keepers.length);
    assert.ok(roles.some((r) => r.length === 0), "no workload entry");
  });
});

Deno.test("the README's selectors tell the modes of one binary apart", () => {
  for (const entry of ENTRIES) {
    assert.ok(entry.selectors.length > 0, entry.id);
    for (const selector of entry.selectors) {
      assert.match(
        selector,
        /^(unix:(user|uid|path):|systemd:id:)\S+$/,
        `${entry.id}: ${selector}`,
      );
    }
  }
  // No process can match two SPIKE entries on one host: no entry's selectors
  // are a subset of another's there.
  for (const a of ENTRIES) {
    for (const b of ENTRIES) {
      if (a === b || a.parent !== b.parent) continue;
      assert.ok(
        !a.selectors.every((s) => b.selectors.includes(s)),
        `${b.id} also matches the selectors of ${a.id}`,
      );
    }
  }
  assert.match(README, /`unix:sha256` hashes the\s+executable/);
});

Deno.test("the README switches to recover and restore as those entries' users", async () => {
  const switching = commands(
    block("### Registering SPIKE in SPIRE", "sudo -u spike-recover"),
  );
  await withEnv({ SPIKE_TRUST_ROOT: TD }, () => {
    for (const role of ["recover", "restore"] as const) {
      const entry = ENTRIES.find((e) => hasRole(e.id, role))!;
      const line = switching.find((l) => l.endsWith(`operator ${role}`));
      assert.ok(line, `no command for ${role}`);
      const user = /^sudo -u (\S+)/.exec(line)![1]!;
      assert.deepEqual(entry.selectors, [`unix:user:${user}`]);
      assert.match(
        line,
        new RegExp(`SPIKE_TRUST_ROOT=${TD.replaceAll(".", "\\.")}`),
      );
    }
  });
});

Deno.test("the README's systemd units run as the registered users, with SPIKE_TRUST_ROOT and pinned keepers", async () => {
  const units = new Map(
    ["spike-nexus.service", "spike-keeper.service"].map((name) => [
      name,
      block("### systemd units", `/etc/systemd/system/${name}`),
    ]),
  );
  for (const [name, unit] of units) {
    assert.match(unit, new RegExp(`^Environment=SPIKE_TRUST_ROOT=${TD}$`, "m"));
    const user = /^User=(\S+)$/m.exec(unit)![1]!;
    const role = name === "spike-nexus.service" ? "nexus" : "keeper";
    await withEnv({ SPIKE_TRUST_ROOT: TD }, () => {
      for (const entry of ENTRIES.filter((e) => hasRole(e.id, role))) {
        assert.deepEqual(entry.selectors, [`unix:user:${user}`], name);
      }
    });
  }
  const nexus = units.get("spike-nexus.service")!;
  const env = (name: string) =>
    new RegExp(`^Environment=${name}=(\\S+)$`, "m").exec(nexus)![1]!;
  // The unit's data folder does not exist here; the peers are what counts.
  const dataParent = await Deno.makeTempDir();
  try {
    await withEnv({
      SPIKE_TRUST_ROOT: TD,
      SPIKE_NEXUS_KEEPER_PEERS: env("SPIKE_NEXUS_KEEPER_PEERS"),
      SPIKE_NEXUS_SHAMIR_SHARES: env("SPIKE_NEXUS_SHAMIR_SHARES"),
      SPIKE_NEXUS_SHAMIR_THRESHOLD: env("SPIKE_NEXUS_SHAMIR_THRESHOLD"),
      SPIKE_NEXUS_DATA_DIR: `${dataParent}/data`,
    }, () => {
      const peers = readNexusConfig().keeperPeers;
      assert.equal(peers.length, 5);
      for (const peer of peers) {
        assert.ok(peer.spiffeId, `${peer.url} is not pinned`);
        assert.ok(hasRole(peer.spiffeId, "keeper"), peer.spiffeId);
      }
    });
  } finally {
    await Deno.remove(dataParent, { recursive: true });
  }
});
