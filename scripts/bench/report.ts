// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The benchmark's outputs: one table (Markdown, also read in a terminal),
 * the results document and a small SVG bar chart of throughput next to the
 * baseline.
 *
 * @module
 */

/** A target and whether this run met it. */
export interface Target {
  /** The target, e.g. `≥ 0.7× baseline`. */
  readonly text: string;
  /** Whether the run met it. */
  readonly pass: boolean;
}

/** One row of the results table; figures not measured stay undefined. */
export interface Row {
  /** Stable key, for results.json readers. */
  readonly id: string;
  /** What was measured. */
  readonly scenario: string;
  /** Concurrent clients. */
  readonly clients?: number;
  /** Successful requests per second. */
  readonly rps?: number;
  /** Requests per second over the baseline's at the same concurrency. */
  readonly ratio?: number;
  /** The baseline's requests per second the ratio is taken against. */
  readonly baselineRps?: number;
  /** Median latency or time, ms. */
  readonly p50?: number;
  /** 99th percentile, ms. */
  readonly p99?: number;
  /** Slowest, ms. */
  readonly max?: number;
  /** Server CPU time per request, µs. */
  readonly cpuUsPerRequest?: number;
  /** Server CPU time per request over the baseline's at the same concurrency. */
  readonly cpuRatio?: number;
  /** The load client's own CPU time per request, µs. */
  readonly clientCpuUsPerRequest?: number;
  /** Share of one core the load client kept busy over the window. */
  readonly clientCores?: number;
  /** Server peak (or, at rest, current) resident memory, MiB. */
  readonly rssMb?: number;
  /** The issue's target for this row. */
  readonly target?: Target;
  /** A short remark. */
  readonly note?: string;
}

/** Where and how the run happened. */
export interface RunInfo {
  /** ISO date of the run. */
  readonly date: string;
  /** CPU model. */
  readonly cpu: string;
  /** Logical CPUs. */
  readonly cpus: number;
  /** Memory, GiB. */
  readonly memoryGb: number;
  /** Deno version. */
  readonly deno: string;
  /** Operating system. */
  readonly os: string;
  /** The command that ran. */
  readonly command: string;
  /** Secrets, versions and policies of the scale scenario. */
  readonly scale: string;
  /** Measured window per scenario. */
  readonly durationMs: number;
  /** Secret value size. */
  readonly size: number;
}

function fixed(value: number | undefined, digits: number): string {
  if (value === undefined || !Number.isFinite(value)) return "";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function ms(value: number | undefined): string {
  if (value === undefined) return "";
  return fixed(value, value < 10 ? 2 : value < 100 ? 1 : 0);
}

const HEADER = [
  "Scenario",
  "Clients",
  "req/s",
  "× baseline",
  "p50 ms",
  "p99 ms",
  "max ms",
  "CPU µs/req",
  "CPU × baseline",
  "Client µs/req",
  "RSS MB",
  "Target",
];

/**
 * The results table in Markdown.
 *
 * @param rows the rows
 * @returns the table
 */
export function table(rows: readonly Row[]): string {
  const cells = rows.map((r) => [
    r.scenario,
    r.clients === undefined ? "" : String(r.clients),
    fixed(r.rps, 0),
    r.ratio === undefined ? "" : `${fixed(r.ratio, 2)}`,
    ms(r.p50),
    ms(r.p99),
    ms(r.max),
    fixed(r.cpuUsPerRequest, 0),
    fixed(r.cpuRatio, 2),
    fixed(r.clientCpuUsPerRequest, 0),
    fixed(r.rssMb, 0),
    r.target ? `${r.target.text}: ${r.target.pass ? "pass" : "**FAIL**"}` : "",
  ]);
  const line = (c: readonly string[]) => `| ${c.join(" | ")} |`;
  const last = HEADER.length - 1;
  const align = HEADER.map((_, i) => i === 0 || i === last ? "---" : "--:");
  return [line(HEADER), line(align), ...cells.map(line)].join("\n");
}

/**
 * The results document: machine, command, table, notes.
 *
 * @param info the run
 * @param rows the rows
 * @param notes remarks below the table, one per line
 * @param chartFile the chart's file name, linked from the document
 * @returns Markdown
 */
export function markdown(
  info: RunInfo,
  rows: readonly Row[],
  notes: readonly string[],
  chartFile: string,
): string {
  return [
    "## Performance",
    "",
    `Measured ${info.date.slice(0, 10)} with \`${info.command}\` on ` +
    `${info.cpus} × ${info.cpu}, ${fixed(info.memoryGb, 0)} GiB RAM, ` +
    `${info.os}, Deno ${info.deno}. Nexus on SQLite (WAL, commits ` +
    `acknowledged once an fdatasync of the WAL begun after them returns), ` +
    `5 keepers, threshold 3; load from a separate ` +
    `process over SPIFFE mTLS keep-alive connections, ` +
    `${info.durationMs / 1000} s per scenario, ${info.size}-byte values. ` +
    `Scale: ${info.scale}. Client and servers share the same cores, so ` +
    `every throughput is also given as a ratio to a trivial mTLS handler ` +
    `(\`serveMtls\`, same runtime, same client) measured in the same run, ` +
    `and so is the server's CPU time per request (\`CPU × baseline\`: what ` +
    `a request costs the server, whoever is the limit). \`Client µs/req\` ` +
    `is the load client's own CPU per request: times req/s near one core, ` +
    `the client, not the server, set the pace.`,
    "",
    table(rows),
    "",
    ...notes.map((n) => `- ${n}`),
    "",
    `![Throughput next to the baseline](${chartFile})`,
    "",
  ].join("\n");
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(
    />/g,
    "&gt;",
  );
}

/**
 * A horizontal bar chart: for each throughput row, its req/s next to the
 * baseline's at the same concurrency.
 *
 * @param rows the rows; those with both `rps` and `baselineRps` are drawn,
 *   except the baseline's own
 * @param title the chart title
 * @returns SVG text
 */
export function chart(rows: readonly Row[], title: string): string {
  const drawn = rows.filter((r) =>
    r.rps !== undefined && r.baselineRps !== undefined &&
    !r.id.includes("baseline")
  );
  const labelWidth = 300;
  const barWidth = 420;
  const rowHeight = 34;
  const top = 44;
  const width = labelWidth + barWidth + 90;
  const height = top + drawn.length * rowHeight + 30;
  const most = Math.max(1, ...drawn.flatMap((r) => [r.rps!, r.baselineRps!]));
  const scale = (v: number) => Math.max(1, (v / most) * barWidth);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${
      escapeXml(title)
    }</text>`,
    `<rect x="${labelWidth}" y="28" width="10" height="10" fill="#bbb"/>`,
    `<text x="${
      labelWidth + 14
    }" y="37">baseline (trivial mTLS handler)</text>`,
    `<rect x="${
      labelWidth + 220
    }" y="28" width="10" height="10" fill="#2a6fb0"/>`,
    `<text x="${labelWidth + 234}" y="37">SPIKE nexus</text>`,
  ];
  drawn.forEach((r, i) => {
    const y = top + i * rowHeight;
    const label = `${r.scenario}${r.clients ? ` (${r.clients})` : ""}`;
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + 20}" text-anchor="end">${
        escapeXml(label)
      }</text>`,
      `<rect x="${labelWidth}" y="${y + 4}" width="${
        scale(r.baselineRps!).toFixed(1)
      }" height="12" fill="#bbb"/>`,
      `<rect x="${labelWidth}" y="${y + 17}" width="${
        scale(r.rps!).toFixed(1)
      }" height="12" fill="#2a6fb0"/>`,
      `<text x="${(labelWidth + scale(r.baselineRps!) + 4).toFixed(1)}" y="${
        y + 14
      }" fill="#555">${fixed(r.baselineRps, 0)}</text>`,
      `<text x="${(labelWidth + scale(r.rps!) + 4).toFixed(1)}" y="${y + 27}">${
        fixed(r.rps, 0)
      }${r.ratio === undefined ? "" : ` (${fixed(r.ratio, 2)}×)`}</text>`,
    );
  });
  parts.push(
    `<text x="${labelWidth}" y="${
      height - 8
    }" fill="#555">requests per second, higher is better</text>`,
    "</svg>",
    "",
  );
  return parts.join("\n");
}
