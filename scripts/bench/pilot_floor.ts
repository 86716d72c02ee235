// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * The floor of the pilot row: the least a Deno CLI does to read a secret
 * over mTLS with an SVID. It starts Deno, reads the three SVID files, makes
 * one `node:https` request and prints the answer; no argument parsing, no
 * SPIFFE ID check of the server, no output formatting. What `spike pilot
 * secret get` takes beyond this, in the same run, is SPIKE's share.
 *
 * Usage: `pilot_floor.ts <svid dir> <url> <json body>`; prints the
 * response body and exits 0 on HTTP 200.
 *
 * @module
 */
import https from "node:https";

if (import.meta.main) {
  const [svidDir, url, body] = Deno.args;
  if (svidDir === undefined || url === undefined || body === undefined) {
    console.error("Usage: pilot_floor.ts <svid dir> <url> <json body>");
    Deno.exit(2);
  }
  const [cert, key, ca] = await Promise.all(
    ["svid.pem", "svid_key.pem", "svid_bundle.pem"].map((name) =>
      Deno.readTextFile(`${svidDir}/${name}`)
    ),
  );
  const status = await new Promise<number>((resolve, reject) => {
    const req = https.request(url, {
      method: "POST",
      cert,
      key,
      ca,
      // The chain is checked against the bundle; the name check is skipped
      // (the certificate names a SPIFFE ID, not a host), as pilot replaces
      // it with its own SPIFFE ID check.
      checkServerIdentity: () => undefined,
      headers: { "Content-Type": "application/json" },
    }, (res) => {
      res.on("data", (chunk: Uint8Array) => Deno.stdout.writeSync(chunk));
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
  Deno.exitCode = status === 200 ? 0 : 1;
}
