// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * `deno task build:sdk [--out DIR]`: builds the workload SDK as an ESM
 * package for Node.js 20+ (and any bundler) in `dist/sdk/`: `index.js`
 * plus lazily loaded chunks, `index.d.ts`, `package.json`, a README and the
 * licenses of the bundled npm packages.
 *
 * `@grpc/grpc-js` (the Workload API client) and its dependencies are
 * bundled into a chunk that loads only when the Workload API is used, so
 * the package has no npm dependencies: `npm install` of the folder or of
 * an `npm pack` tarball works offline, on air-gapped hosts too.
 *
 * @module
 */
import { parseArgs } from "node:util";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const ENTRY = `${ROOT}/sdk/mod.ts`;
/** The package name Node.js applications import. */
export const PACKAGE_NAME = "@spike/sdk";

interface DenoConfig {
  version: string;
  imports: Record<string, string>;
  compilerOptions: Record<string, unknown>;
}

interface LockFile {
  specifiers: Record<string, string>;
  npm: Record<string, { dependencies?: string[] }>;
}

async function run(args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `deno ${args[0]} failed:\n${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text;
}

/** The npm packages the SDK bundles: `@grpc/grpc-js` and what it needs. */
function bundledPackages(lock: LockFile): string[] {
  const start = Object.entries(lock.specifiers)
    .filter(([spec]) => spec.startsWith("npm:@grpc/grpc-js@"))
    .map(([spec, version]) =>
      `${spec.slice(4, spec.lastIndexOf("@"))}@${version}`
    );
  const seen = new Set<string>();
  const queue = [...start];
  while (queue.length > 0) {
    const key = queue.pop()!;
    if (seen.has(key)) continue;
    seen.add(key);
    for (const dep of lock.npm[key]?.dependencies ?? []) {
      // A dependency is `name` (the one locked version) or `name@version`.
      const exact = dep.lastIndexOf("@") > 0
        ? dep
        : Object.keys(lock.npm).find((k) =>
          k.slice(0, k.lastIndexOf("@")) === dep
        );
      if (exact !== undefined) queue.push(exact);
    }
  }
  return [...seen].sort();
}

async function licenses(packages: string[]): Promise<string> {
  const info = JSON.parse(await run(["info", "--json"]));
  const cache = `${info.npmCache}/registry.npmjs.org`;
  const parts = [
    "The SPIKE workload SDK bundles code of these npm packages into the chunk",
    "that loads with the Workload API (the list is everything @grpc/grpc-js",
    "depends on, a superset of what is bundled). Their licenses follow.",
    "",
  ];
  for (const key of packages) {
    const at = key.lastIndexOf("@");
    const [name, version] = [key.slice(0, at), key.slice(at + 1)];
    const dir = `${cache}/${name}/${version}`;
    const manifest = JSON.parse(await Deno.readTextFile(`${dir}/package.json`));
    parts.push(
      `## ${name} ${version} (${manifest.license ?? "see below"})`,
      "",
    );
    for await (const entry of Deno.readDir(dir)) {
      if (/^(licen[cs]e|copying)/i.test(entry.name) && entry.isFile) {
        parts.push(
          (await Deno.readTextFile(`${dir}/${entry.name}`)).trim(),
          "",
        );
      }
    }
  }
  return parts.join("\n") + "\n";
}

const README = (version: string) =>
  `# ${PACKAGE_NAME} ${version}

The SPIKE workload SDK for Node.js 20+: read and write secrets and use the
cipher of a SPIKE Nexus with this workload's SPIFFE identity.

\`\`\`js
import { Spike } from "${PACKAGE_NAME}";

// SPIKE_NEXUS_API_URL, and SPIKE_SVID_DIR or SPIFFE_ENDPOINT_SOCKET.
const spike = await Spike.connect();
try {
  const password = await spike.getValue("apps/orders/db", "password", { as: "text" });
} finally {
  await spike.close();
}
\`\`\`

Install this folder (\`npm install /path/to/dist/sdk\`) or a tarball made
with \`npm pack\` in it (\`npm install ./spike-sdk-${version}.tgz\`). The
package has no npm dependencies: \`@grpc/grpc-js\` is bundled, see
THIRD_PARTY_LICENSES.txt. See "Using SPIKE from your application" in the
SPIKE README for policies and examples.
`;

/**
 * Builds the package.
 *
 * @param out the output folder (emptied first)
 */
export async function buildSdk(out: string): Promise<void> {
  const config = JSON.parse(
    await Deno.readTextFile(`${ROOT}/deno.json`),
  ) as DenoConfig;
  const lock = JSON.parse(
    await Deno.readTextFile(`${ROOT}/deno.lock`),
  ) as LockFile;
  await Deno.remove(out, { recursive: true }).catch(() => {});
  await Deno.mkdir(out, { recursive: true });
  const work = await Deno.makeTempDir({ prefix: "spike-sdk-build-" });
  try {
    // Declarations are type-checked against Deno's libs and @types/node
    // together, which disagree on some web globals: skip checking .d.ts
    // files there (the SDK itself is checked by `deno task check`).
    const buildConfig = `${work}/deno.json`;
    await Deno.writeTextFile(
      buildConfig,
      JSON.stringify({
        imports: config.imports,
        nodeModulesDir: "none",
        compilerOptions: { ...config.compilerOptions, skipLibCheck: true },
      }),
    );
    await run([
      "bundle",
      "--quiet",
      "--config",
      buildConfig,
      "--lock",
      `${ROOT}/deno.lock`,
      "--frozen-lockfile",
      "--platform",
      "deno",
      "--format",
      "esm",
      "--code-splitting",
      "--declaration",
      "--outdir",
      out,
      ENTRY,
    ]);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  await Deno.rename(`${out}/mod.js`, `${out}/index.js`);
  const types = await Deno.readTextFile(`${out}/mod.d.ts`);
  await Deno.remove(`${out}/mod.d.ts`);
  // The examples import the package as an application would.
  await Deno.writeTextFile(
    `${out}/index.d.ts`,
    types.replaceAll('from "./mod.ts"', `from "${PACKAGE_NAME}"`),
  );
  const packages = bundledPackages(lock);
  await Deno.writeTextFile(
    `${out}/THIRD_PARTY_LICENSES.txt`,
    await licenses(packages),
  );
  await Deno.writeTextFile(`${out}/README.md`, README(config.version));
  const files: string[] = [];
  for await (const entry of Deno.readDir(out)) files.push(entry.name);
  const manifest = {
    name: PACKAGE_NAME,
    version: config.version,
    description:
      "SPIKE workload SDK: secrets and cipher with your SPIFFE identity",
    license: "MIT",
    type: "module",
    main: "./index.js",
    types: "./index.d.ts",
    exports: {
      ".": { types: "./index.d.ts", import: "./index.js" },
      "./package.json": "./package.json",
    },
    engines: { node: ">=20" },
    files: files.sort(),
    bundled: Object.fromEntries(
      packages.map((
        k,
      ) => [k.slice(0, k.lastIndexOf("@")), k.slice(k.lastIndexOf("@") + 1)]),
    ),
  };
  await Deno.writeTextFile(
    `${out}/package.json`,
    JSON.stringify(manifest, null, 2) + "\n",
  );
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { out: { type: "string", default: `${ROOT}/dist/sdk` } },
  });
  await buildSdk(values.out!);
  console.log(`Built ${PACKAGE_NAME} in ${values.out}`);
}
