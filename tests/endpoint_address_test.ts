// Copyright 2026 the SPIKE for Deno authors. MIT license.
import assert from "node:assert/strict";
import {
  EndpointAddressError,
  formatEndpointAddress,
  grpcTarget,
  parseEndpointAddress,
} from "../lib/spiffe/endpoint_address.ts";

function rejects(value: string, message: RegExp): void {
  assert.throws(
    () => parseEndpointAddress(value),
    (e: unknown) =>
      e instanceof EndpointAddressError && message.test(e.message),
    `${value} should fail with ${message}`,
  );
}

Deno.test("endpoint address accepts a unix socket with an absolute path", () => {
  const a = parseEndpointAddress("unix:///run/spire/sockets/agent.sock");
  assert.deepEqual(a, { kind: "unix", path: "/run/spire/sockets/agent.sock" });
  assert.equal(grpcTarget(a), "unix:/run/spire/sockets/agent.sock");
  assert.equal(
    formatEndpointAddress(a),
    "unix:///run/spire/sockets/agent.sock",
  );
  assert.deepEqual(parseEndpointAddress("unix:/tmp/agent.sock"), {
    kind: "unix",
    path: "/tmp/agent.sock",
  });
  assert.deepEqual(parseEndpointAddress("unix:///tmp/a%20b.sock"), {
    kind: "unix",
    path: "/tmp/a b.sock",
  });
});

Deno.test("endpoint address rejects unix URIs with anything but a path", () => {
  rejects("unix:agent.sock", /must not be opaque/);
  rejects("unix://user@/tmp/agent.sock", /must not include user info/);
  rejects("unix://localhost/tmp/agent.sock", /must not include an authority/);
  rejects("unix:///tmp/agent.sock?x=1", /must not include query values/);
  rejects("unix:///tmp/agent.sock#frag", /must not include a fragment/);
  rejects("unix://", /must include a path/);
  rejects("unix:///", /must include a path/);
  rejects("unix:///tmp/%zz", /invalid percent-encoding/);
});

Deno.test("endpoint address accepts tcp with an IP literal and a port", () => {
  const v4 = parseEndpointAddress("tcp://127.0.0.1:8081");
  assert.deepEqual(v4, {
    kind: "tcp",
    host: "127.0.0.1",
    ipv6: false,
    port: 8081,
  });
  assert.equal(grpcTarget(v4), "ipv4:127.0.0.1:8081");
  assert.equal(formatEndpointAddress(v4), "tcp://127.0.0.1:8081");
  const v6 = parseEndpointAddress("tcp://[::1]:8081");
  assert.deepEqual(v6, { kind: "tcp", host: "::1", ipv6: true, port: 8081 });
  assert.equal(grpcTarget(v6), "ipv6:[::1]:8081");
  assert.equal(formatEndpointAddress(v6), "tcp://[::1]:8081");
  assert.equal(
    (parseEndpointAddress("tcp://[2001:DB8::1]:1") as { host: string }).host,
    "2001:db8::1",
  );
});

Deno.test("endpoint address rejects tcp URIs that are not IP:port", () => {
  rejects("tcp:127.0.0.1:8081", /must not be opaque/);
  rejects("tcp://u:p@127.0.0.1:8081", /must not include user info/);
  rejects("tcp://", /must include a host/);
  rejects("tcp://127.0.0.1:8081/", /must not include a path/);
  rejects("tcp://127.0.0.1:8081/agent", /must not include a path/);
  rejects("tcp://127.0.0.1:8081?x", /must not include query values/);
  rejects("tcp://127.0.0.1:8081#x", /must not include a fragment/);
  rejects("tcp://localhost:8081", /host component must be an IP:port/);
  rejects("tcp://example.org:8081", /host component must be an IP:port/);
  rejects("tcp://127.0.0.01:8081", /host component must be an IP:port/);
  rejects("tcp://256.0.0.1:8081", /host component must be an IP:port/);
  rejects("tcp://[fe80::1%25eth0]:8081", /host component must be an IP:port/);
  rejects("tcp://[::1:8081", /unclosed IPv6 bracket/);
  rejects("tcp://::1:8081", /IPv6 address in brackets/);
  rejects("tcp://127.0.0.1", /must include a port/);
  rejects("tcp://127.0.0.1:", /must include a port/);
  rejects("tcp://[::1]", /must include a port/);
  rejects("tcp://127.0.0.1:0", /port must be a number from 1 to 65535/);
  rejects("tcp://127.0.0.1:65536", /port must be a number from 1 to 65535/);
  rejects("tcp://127.0.0.1:http", /port must be a number from 1 to 65535/);
});

Deno.test("endpoint address rejects other schemes and empty input", () => {
  rejects("", /is empty/);
  rejects("/tmp/agent.sock", /must have a "tcp" or "unix" scheme/);
  rejects("http://127.0.0.1:8081", /must have a "tcp" or "unix" scheme/);
  rejects("npipe:agent", /must have a "tcp" or "unix" scheme/);
});
