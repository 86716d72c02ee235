// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The example policies the help texts and the README show, run as written
 * against a real nexus: each does what its name says (a `*-read` policy
 * lets its workload read its paths, and nothing else).
 */
import assert from "node:assert/strict";
import { Cluster } from "../scripts/cluster.ts";
import { fails, ok } from "./pilot_e2e_support.ts";

/** Splits a shell command line: quotes, backslash-newline continuations. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "\\" && line[i + 1] === "\n") {
      i++;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      const end = line.indexOf('"', i + 1);
      word = (word ?? "") + line.slice(i + 1, end).replace(/\\(.)/g, "$1");
      i = end;
    } else if (c === "\\") {
      word = (word ?? "") + line[++i];
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** The `spike pilot policy create …` command in a text, continuation lines included. */
function createCommand(text: string): string[] {
  // The example, not the usage line (--name N).
  const start = text.search(/spike pilot policy create --name (?!N )/);
  assert.ok(start >= 0, "no policy create example");
  let end = text.indexOf("\n", start);
  while (text[end - 1] === "\\") end = text.indexOf("\n", end + 1);
  return shellWords(text.slice(start, end === -1 ? undefined : end)).slice(2);
}

/** The YAML example of `policy apply --help`: the indented block after "as YAML". */
function applyYaml(help: string): string {
  const lines = help.split("\n");
  const from = lines.findIndex((l) => l.startsWith("  name: "));
  const to = lines.findIndex((l, i) => i > from && l.trim() === "");
  return lines.slice(from, to).map((l) => l.slice(2)).join("\n") + "\n";
}

Deno.test("every documented example policy does what its name says", async (t) => {
  const cluster = await Cluster.create({ backend: "memory", logLevel: "WARN" });
  const su = (args: string[], stdin?: string) =>
    cluster.pilot("superuser", args, stdin === undefined ? {} : { stdin });
  try {
    await cluster.startNexus();
    await cluster.waitUnlocked();
    const readme = await Deno.readTextFile(
      new URL("../README.md", import.meta.url),
    );
    const createHelp = ok(await su(["policy", "create", "--help"]), "help");
    const applyHelp = ok(await su(["policy", "apply", "--help"]), "help");
    const examples: {
      where: string;
      apply: () => Promise<void>;
      name: string;
      workload: string;
      path: string;
      outside: string;
    }[] = [
      {
        where: "policy create --help",
        apply: async () => {
          ok(await su(createCommand(createHelp)), "create");
        },
        name: "app-read",
        workload: "spiffe://spike.ist/workload/app",
        path: "apps/app/db",
        outside: "apps/other/db",
      },
      {
        where: "the README's pilot section",
        apply: async () => {
          ok(await su(createCommand(readme)), "create");
        },
        name: "app-read",
        workload: "spiffe://spike.ist/workload/app",
        path: "apps/db",
        outside: "billing/db",
      },
      {
        where: "policy apply --help (from stdin)",
        apply: async () => {
          ok(
            await su(["policy", "apply", "--file", "-"], applyYaml(applyHelp)),
            "apply",
          );
        },
        name: "web-read",
        workload: "spiffe://spike.ist/web/frontend",
        path: "apps/web/db",
        outside: "apps/app/db",
      },
    ];
    for (const example of examples) {
      await t.step(`${example.name} from ${example.where}`, async () => {
        await example.apply();
        const policy = JSON.parse(
          ok(await su(["policy", "get", example.name, "-f", "json"]), "get"),
        );
        assert.ok(example.name.endsWith("-read"));
        assert.deepEqual(policy.permissions, ["read"]);
        const id = example.workload.split("/").slice(3).join("-");
        await cluster.issue(id, example.workload);
        for (const path of [example.path, example.outside]) {
          ok(await su(["secret", "put", path, "k=v"]), "put");
        }
        const as = (args: string[]) => cluster.pilot(id, args);
        assert.equal(
          ok(await as(["secret", "get", example.path, "k"]), "get"),
          "v\n",
        );
        fails(
          await as(["secret", "put", example.path, "k=w"]),
          4,
          /refused this identity/,
        );
        fails(
          await as(["secret", "get", example.outside]),
          4,
          /refused this identity/,
        );
        ok(await su(["policy", "delete", example.name, "--yes"]), "delete");
      });
    }
  } finally {
    await cluster.close();
  }
});
