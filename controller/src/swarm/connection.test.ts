import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { resolveDockerConnection } from "./connection.js";
import { classifyEngineError } from "./errors.js";

describe("DOCKER_HOST resolution", () => {
  it("uses the local socket /var/run/docker.sock when DOCKER_HOST is unset or empty, as the docker CLI does", () => {
    // resolution only: nothing connects to it
    expect(resolveDockerConnection(undefined)).toMatchObject({ socketPath: "/var/run/docker.sock", host: undefined, display: "unix:///var/run/docker.sock" });
    expect(resolveDockerConnection("")).toMatchObject({ socketPath: "/var/run/docker.sock" });
  });

  it("takes a unix socket path", () => {
    expect(resolveDockerConnection("unix:///run/x/docker.sock")).toMatchObject({ socketPath: "/run/x/docker.sock", host: undefined });
  });

  it("uses TLS material from DOCKER_CERT_PATH when DOCKER_TLS_VERIFY=1", () => {
    const dir = mkdtempSync(join(tmpdir(), "certs-"));
    for (const f of ["ca.pem", "cert.pem", "key.pem"]) writeFileSync(join(dir, f), f);
    const c = resolveDockerConnection("tcp://manager.example:2376", { DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: dir });
    expect(c).toMatchObject({ host: "manager.example", port: "2376", protocol: "https", display: "tcp://manager.example:2376 (TLS)" });
    expect(c.ca?.toString()).toBe("ca.pem");
  });

  it("names the missing files when TLS material cannot be read", () => {
    expect(() => resolveDockerConnection("tcp://m:2376", { DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: "/nonexistent" })).toThrow(
      /ca.pem, cert.pem and key.pem in \/nonexistent/,
    );
  });

  it("takes ssh://user@host", () => {
    expect(resolveDockerConnection("ssh://ops@manager:2222")).toMatchObject({ protocol: "ssh", host: "manager", port: "2222", username: "ops" });
  });
});

describe("engine error classification", () => {
  it("maps status and message onto stable codes", () => {
    expect(classifyEngineError("updateService", 500, "rpc error: code = Unknown desc = update out of sequence").code).toBe("CONFLICT");
    expect(classifyEngineError("removeSecret", 400, "rpc error: code = InvalidArgument desc = secret 'x' is in use by the following service: y").code).toBe(
      "IN_USE",
    );
    expect(classifyEngineError("createService", 400, "invalid mount config").code).toBe("INVALID");
    expect(classifyEngineError("createConfig", 409, "config x already exists").code).toBe("NAME_TAKEN");
    expect(classifyEngineError("listNodes", undefined, "connect ENOENT").code).toBe("UNAVAILABLE");
    expect(classifyEngineError("listNodes", 503, "This node is not a swarm manager.").code).toBe("NOT_MANAGER");
  });
});
