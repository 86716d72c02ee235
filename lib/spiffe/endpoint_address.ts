// Copyright 2026 the SPIKE for Deno authors. MIT license.
/**
 * Parsing of the SPIFFE Workload API endpoint address
 * (`SPIFFE_ENDPOINT_SOCKET`), following the SPIFFE Workload Endpoint
 * standard and go-spiffe's `workloadapi/addr.go`: `unix:///absolute/path` or
 * `tcp://IP:port`, nothing else.
 *
 * @module
 */

/** Raised for an endpoint address that breaks a rule; the message names it. */
export class EndpointAddressError extends Error {
  /** Creates the error with a message naming the broken rule. */
  constructor(message: string) {
    super(message);
    this.name = "EndpointAddressError";
  }
}

/** A parsed Workload API endpoint. */
export type EndpointAddress =
  | {
    /** A unix domain socket. */
    readonly kind: "unix";
    /** Absolute file system path of the socket. */
    readonly path: string;
  }
  | {
    /** A TCP socket on an IP literal. */
    readonly kind: "tcp";
    /** The IP address; IPv6 without brackets. */
    readonly host: string;
    /** Whether `host` is an IPv6 address. */
    readonly ipv6: boolean;
    /** The TCP port, 1 to 65535. */
    readonly port: number;
  };

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/**
 * Parses a Workload API endpoint address.
 *
 * @param value e.g. `unix:///run/spire/sockets/agent.sock` or `tcp://127.0.0.1:8081`
 * @param variable the environment variable the value came from, e.g.
 *   `SPIFFE_ENDPOINT_SOCKET`; when given, errors name it and the value
 * @returns the parsed endpoint
 * @throws {EndpointAddressError} naming the first broken rule
 */
export function parseEndpointAddress(
  value: string,
  variable?: string,
): EndpointAddress {
  if (variable === undefined) return parse(value);
  try {
    return parse(value);
  } catch (e) {
    if (!(e instanceof EndpointAddressError)) throw e;
    throw new EndpointAddressError(
      `${variable} "${value}" is invalid: ${e.message.charAt(0).toLowerCase()}${
        e.message.slice(1)
      }`,
    );
  }
}

function parse(value: string): EndpointAddress {
  if (value.length === 0) {
    throw new EndpointAddressError("Workload endpoint socket URI is empty");
  }
  const scheme = SCHEME.exec(value)?.[1]?.toLowerCase();
  if (scheme !== "unix" && scheme !== "tcp") {
    // A bare socket path is the common slip: show the URI it means.
    const hint = value.startsWith("/") ? `: write unix://${value}` : "";
    throw new EndpointAddressError(
      `Workload endpoint socket URI must have a "tcp" or "unix" scheme${hint}`,
    );
  }
  const rest = value.slice(scheme.length + 1);
  return scheme === "unix" ? parseUnix(rest) : parseTcp(rest);
}

/**
 * The gRPC target name for an endpoint, as `@grpc/grpc-js` resolves it
 * (`unix:/path`, `ipv4:1.2.3.4:80`, `ipv6:[::1]:80`), so no name lookup runs.
 *
 * @param address a parsed endpoint
 * @returns the target string
 */
export function grpcTarget(address: EndpointAddress): string {
  if (address.kind === "unix") return `unix:${address.path}`;
  return address.ipv6
    ? `ipv6:[${address.host}]:${address.port}`
    : `ipv4:${address.host}:${address.port}`;
}

/**
 * Formats an endpoint back as a URI, for messages.
 *
 * @param address a parsed endpoint
 * @returns e.g. `unix:///run/agent.sock`
 */
export function formatEndpointAddress(address: EndpointAddress): string {
  if (address.kind === "unix") return `unix://${address.path}`;
  const host = address.ipv6 ? `[${address.host}]` : address.host;
  return `tcp://${host}:${address.port}`;
}

/** Splits `//authority/path?query#fragment` (after the scheme) into parts. */
function splitHierarchical(rest: string): {
  authority: string | undefined;
  path: string;
  query: string | undefined;
  fragment: string | undefined;
} {
  let text = rest;
  let fragment: string | undefined;
  let query: string | undefined;
  const hash = text.indexOf("#");
  if (hash !== -1) {
    fragment = text.slice(hash + 1);
    text = text.slice(0, hash);
  }
  const question = text.indexOf("?");
  if (question !== -1) {
    query = text.slice(question + 1);
    text = text.slice(0, question);
  }
  let authority: string | undefined;
  if (text.startsWith("//")) {
    const slash = text.indexOf("/", 2);
    authority = slash === -1 ? text.slice(2) : text.slice(2, slash);
    text = slash === -1 ? "" : text.slice(slash);
  }
  return { authority, path: text, query, fragment };
}

function parseUnix(rest: string): EndpointAddress {
  const parts = splitHierarchical(rest);
  if (parts.authority === undefined && !parts.path.startsWith("/")) {
    throw new EndpointAddressError(
      "Workload endpoint unix socket URI must not be opaque: use unix:///absolute/path",
    );
  }
  if (parts.authority?.includes("@")) {
    throw new EndpointAddressError(
      "Workload endpoint unix socket URI must not include user info",
    );
  }
  if (parts.authority) {
    throw new EndpointAddressError(
      "Workload endpoint unix socket URI must not include an authority: use unix:///absolute/path",
    );
  }
  if (parts.query !== undefined) {
    throw new EndpointAddressError(
      "Workload endpoint unix socket URI must not include query values",
    );
  }
  if (parts.fragment !== undefined) {
    throw new EndpointAddressError(
      "Workload endpoint unix socket URI must not include a fragment",
    );
  }
  if (parts.path === "" || parts.path === "/") {
    throw new EndpointAddressError(
      "Workload endpoint unix socket URI must include a path",
    );
  }
  let path: string;
  try {
    path = decodeURIComponent(parts.path);
  } catch {
    throw new EndpointAddressError(
      "Workload endpoint unix socket URI path has invalid percent-encoding",
    );
  }
  if (path.includes("\0")) {
    throw new EndpointAddressError(
      "Workload endpoint unix socket URI path must not contain a NUL byte",
    );
  }
  return { kind: "unix", path };
}

function parseTcp(rest: string): EndpointAddress {
  const parts = splitHierarchical(rest);
  if (parts.authority === undefined) {
    throw new EndpointAddressError(
      "Workload endpoint tcp socket URI must not be opaque: use tcp://IP:port",
    );
  }
  if (parts.authority.includes("@")) {
    throw new EndpointAddressError(
      "Workload endpoint tcp socket URI must not include user info",
    );
  }
  if (parts.authority === "") {
    throw new EndpointAddressError(
      "Workload endpoint tcp socket URI must include a host",
    );
  }
  if (parts.path !== "") {
    throw new EndpointAddressError(
      "Workload endpoint tcp socket URI must not include a path",
    );
  }
  if (parts.query !== undefined) {
    throw new EndpointAddressError(
      "Workload endpoint tcp socket URI must not include query values",
    );
  }
  if (parts.fragment !== undefined) {
    throw new EndpointAddressError(
      "Workload endpoint tcp socket URI must not include a fragment",
    );
  }
  const { host, portText, ipv6 } = splitHostPort(parts.authority);
  if (ipv6 ? !isIpv6(host) : !isIpv4(host)) {
    throw new EndpointAddressError(
      "Workload endpoint tcp socket URI host component must be an IP:port",
    );
  }
  if (portText === undefined || portText === "") {
    throw new EndpointAddressError(
      "Workload endpoint tcp socket URI host component must include a port",
    );
  }
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) {
    throw new EndpointAddressError(
      "Workload endpoint tcp socket URI port must be a number from 1 to 65535",
    );
  }
  return { kind: "tcp", host: ipv6 ? host.toLowerCase() : host, ipv6, port };
}

function splitHostPort(
  authority: string,
): { host: string; portText: string | undefined; ipv6: boolean } {
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close === -1) {
      throw new EndpointAddressError(
        "Workload endpoint tcp socket URI has an unclosed IPv6 bracket",
      );
    }
    const after = authority.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) {
      throw new EndpointAddressError(
        "Workload endpoint tcp socket URI host component must be an IP:port",
      );
    }
    return {
      host: authority.slice(1, close),
      portText: after === "" ? undefined : after.slice(1),
      ipv6: true,
    };
  }
  const colon = authority.indexOf(":");
  if (colon !== authority.lastIndexOf(":")) {
    // Several colons without brackets: an IPv6 literal that cannot carry a port.
    throw new EndpointAddressError(
      "Workload endpoint tcp socket URI must write an IPv6 address in brackets: tcp://[::1]:port",
    );
  }
  return colon === -1
    ? { host: authority, portText: undefined, ipv6: false }
    : {
      host: authority.slice(0, colon),
      portText: authority.slice(colon + 1),
      ipv6: false,
    };
}

/** Dotted-quad IPv4 with decimal octets and no leading zeros, as Go parses it. */
function isIpv4(host: string): boolean {
  const octets = host.split(".");
  return octets.length === 4 &&
    octets.every((o) => /^(0|[1-9]\d{0,2})$/.test(o) && Number(o) <= 255);
}

function isIpv6(host: string): boolean {
  // Zone identifiers (`%eth0`) are not IP literals; the URL parser rejects
  // them and validates the rest of the IPv6 grammar.
  if (!/^[0-9A-Fa-f:.]+$/.test(host)) return false;
  try {
    new URL(`http://[${host}]/`);
    return true;
  } catch {
    return false;
  }
}
