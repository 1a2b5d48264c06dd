// The limit options (downstream: maxconnections, headertimeout, requesttimeout, idletimeout,
// stalltimeout) and http.debug.addr: defaults, accepted values, errors.
import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "./model.js";
import { parseConfig } from "./parse.js";

function config(httpExtra: string, options: string): string {
  return `version: 0.1
storage:
  delete:
    enabled: true
http:
  addr: 0.0.0.0:5000
${httpExtra}middleware:
  registry:
    - name: downstream
      options:
        blobttl: 24h
        upstreams: [https://dtr.example.com]
${options}`;
}

describe("limits and the debug listener in config.yml", () => {
  it("has sane defaults", () => {
    const r = parseConfig(config("", ""));
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.config.limits).toEqual(DEFAULT_LIMITS);
    expect(DEFAULT_LIMITS).toEqual({ maxConnections: 1000, headerTimeoutMs: 10_000, requestTimeoutMs: 30_000, idleTimeoutMs: 30_000, stallTimeoutMs: 60_000 });
    expect(r.config.debug).toEqual({ host: "127.0.0.1", port: 5001, explicit: false });
    expect(r.warnings).toEqual([]);
  });

  it("reads every option", () => {
    const r = parseConfig(
      config(
        "  debug:\n    addr: 0.0.0.0:5051\n    prometheus:\n      enabled: true\n",
        "        maxconnections: 50\n        headertimeout: 2s\n        requesttimeout: 5s\n        idletimeout: 500ms\n        stalltimeout: 1m\n",
      ),
    );
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.config.limits).toEqual({ maxConnections: 50, headerTimeoutMs: 2000, requestTimeoutMs: 5000, idleTimeoutMs: 500, stallTimeoutMs: 60_000 });
    expect(r.config.debug).toEqual({ host: "0.0.0.0", port: 5051, explicit: true });
    // distribution's prometheus switch means nothing here: /metrics is always on the debug listener.
    expect(r.warnings.map((w) => w.path)).toEqual(["http.debug.prometheus"]);
  });

  it("a requesttimeout defaults to at least the headertimeout", () => {
    const r = parseConfig(config("", "        headertimeout: 45s\n"));
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.config.limits.requestTimeoutMs).toBe(45_000);
  });

  it.each([
    ["maxconnections: 0", "maxconnections", "between 1 and 1000000"],
    ["maxconnections: many", "maxconnections", "between 1 and 1000000"],
    ["headertimeout: 0s", "headertimeout", "greater than zero"],
    ["idletimeout: 2h", "idletimeout", "at most 1h"],
    ["stalltimeout: soon", "stalltimeout", '"soon" is not a duration'],
    ["headertimeout: 20s\n        requesttimeout: 10s", "requesttimeout", "at least headertimeout"],
  ])("rejects %s", (line, key, says) => {
    const r = parseConfig(config("", `        ${line}\n`));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const problem = r.errors.find((e) => e.path === `middleware.registry[0].options.${key}`);
    expect(problem?.message).toContain(says);
    expect(problem?.line).toBeGreaterThan(0);
  });

  it.each([
    ["  debug:\n    addr: nowhere\n", "must be host:port"],
    ["  debug:\n    addr: 0.0.0.0:5000\n", "must not be the registry's own address"],
    ["  debug:\n    addr: 127.0.0.1:5000\n", "must not be the registry's own address"],
  ])("rejects http.debug %j", (http, says) => {
    const r = parseConfig(config(http, ""));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.find((e) => e.path === "http.debug.addr")?.message).toContain(says);
  });
});
