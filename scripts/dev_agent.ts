// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * A development SPIFFE Workload API server: the FetchX509SVID stream of a
 * SPIRE agent, over a unix socket, for one identity per socket. It checks
 * the `workload.spiffe.io` header as the Workload Endpoint spec requires and
 * can push rotations. Tests use it to run SPIKE processes with
 * `SPIFFE_ENDPOINT_SOCKET`, as in production.
 *
 * CLI (serves until Ctrl-C):
 *   deno run --allow-read --allow-write --allow-net --allow-env scripts/dev_agent.ts <ca-dir> <spiffe-id> <socket>
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { type DevCa, issueSvid, loadDevCa } from "./dev_ca.ts";
import {
  FETCH_X509_SVID_PATH,
  WORKLOAD_API_HEADER,
} from "../lib/spiffe/workload_api.ts";
import {
  decodeX509SvidResponse,
  encodeX509SvidResponse,
  type X509SvidResponseMessage,
} from "../lib/spiffe/workload_proto.ts";

/** One open FetchX509SVID stream. */
export type Call = grpc.ServerWritableStream<
  Uint8Array,
  X509SvidResponseMessage
>;

/**
 * A real gRPC server speaking the SpiffeWorkloadAPI FetchX509SVID method,
 * checking the security header as the SPIFFE Workload Endpoint spec
 * requires. `onCall` decides what each accepted call gets.
 */
export class DevWorkloadAgent {
  readonly server = new grpc.Server();
  readonly calls = new Set<Call>();
  callCount = 0;

  constructor(onCall: (call: Call, agent: DevWorkloadAgent) => void) {
    const bytes = (b: Uint8Array) => b;
    this.server.addService({
      FetchX509SVID: {
        path: FETCH_X509_SVID_PATH,
        requestStream: false,
        responseStream: true,
        requestSerialize: (b: Uint8Array) => Buffer.from(b),
        requestDeserialize: bytes,
        responseSerialize: (m: X509SvidResponseMessage) =>
          Buffer.from(encodeX509SvidResponse(m)),
        responseDeserialize: decodeX509SvidResponse,
      },
    }, {
      FetchX509SVID: (call: Call) => {
        this.callCount++;
        const header = call.metadata.get(WORKLOAD_API_HEADER);
        if (header.length !== 1 || header[0] !== "true") {
          call.emit("error", {
            code: grpc.status.INVALID_ARGUMENT,
            details: "security header missing from request",
          });
          return;
        }
        this.calls.add(call);
        call.on("cancelled", () => this.calls.delete(call));
        onCall(call, this);
      },
    });
  }

  static async start(
    socket: string,
    onCall: (call: Call, agent: DevWorkloadAgent) => void,
  ): Promise<DevWorkloadAgent> {
    const agent = new DevWorkloadAgent(onCall);
    await new Promise<void>((resolve, reject) =>
      agent.server.bindAsync(
        `unix://${socket}`,
        grpc.ServerCredentials.createInsecure(),
        (e) => e ? reject(e) : resolve(),
      )
    );
    return agent;
  }

  /** Sends a new state on every open stream. */
  push(message: X509SvidResponseMessage): void {
    for (const call of this.calls) call.write(message);
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

/**
 * A Workload API response holding one SVID for `spiffeId`, issued by `ca`.
 *
 * @param ca the issuing CA (also the bundle)
 * @param spiffeId the SPIFFE ID
 * @param federated CAs of other trust domains to send as federated bundles
 * @returns the response message
 */
export async function svidResponse(
  ca: DevCa,
  spiffeId: string,
  federated: readonly DevCa[] = [],
): Promise<X509SvidResponseMessage> {
  const svid = await issueSvid(ca, spiffeId);
  return {
    svids: [{
      spiffeId,
      x509Svid: svid.certDer,
      x509SvidKey: svid.keyDer,
      bundle: new Uint8Array(ca.cert.rawData),
      hint: "",
    }],
    crl: [],
    federatedBundles: new Map(
      federated.map((f) => [
        `spiffe://${f.trustDomain}`,
        new Uint8Array(f.cert.rawData),
      ]),
    ),
  };
}

if (import.meta.main) {
  const [caDir, spiffeId, socket] = Deno.args;
  if (!caDir || !spiffeId || !socket) {
    console.error("Usage: dev_agent.ts <ca-dir> <spiffe-id> <socket>");
    Deno.exit(2);
  }
  const message = await svidResponse(await loadDevCa(caDir), spiffeId);
  const agent = await DevWorkloadAgent.start(
    socket,
    (call) => call.write(message),
  );
  Deno.addSignalListener("SIGINT", () => {
    agent.stop();
    Deno.exit(0);
  });
  console.log(`Serving ${spiffeId} on unix://${socket}`);
}
