import { readFileSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseSize } from "./size.js";
import { parseConfig } from "./parse.js";

// The runbook's config.yml, exactly as published (with the placeholders filled in).
const SEED = `version: 0.1
log:
  level: info
storage:
  delete:
    enabled: true
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: 0.0.0.0:443
  secret: generate-random-secret
  host: https://cache.example.com
  tls:
    certificate: /run/secrets/cache.cert.pem
    key: /run/secrets/cache.key.pem
middleware:
  registry:
      - name: downstream
        options:
          blobttl: 24h
          upstreams:
            - https://dtr.example.com:443
          cas:
            - /run/secrets/dtr.cert.pem
`;

describe("config.yml loader", () => {
  it("reads the runbook's config.yml unchanged", () => {
    const r = parseConfig(SEED);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.warnings).toEqual([]);
    expect(r.config).toMatchObject({
      logLevel: "info",
      rootDirectory: "/var/lib/registry",
      deleteEnabled: true,
      listenHost: "0.0.0.0",
      listenPort: 443,
      secret: "generate-random-secret",
      publicHost: "https://cache.example.com",
      tls: { certificate: "/run/secrets/cache.cert.pem", key: "/run/secrets/cache.key.pem" },
    });
    expect(r.config.downstream).toMatchObject({
      blobTtlMs: 24 * 3600_000,
      upstreams: [{ url: "https://dtr.example.com" }],
      cas: ["/run/secrets/dtr.cert.pem"],
      serveStale: true,
    });
  });

  it("accepts the seed file from the shared runbook when it is present", () => {
    const dir = "/work/shared/seeds";
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => f.endsWith(".txt"));
    } catch {
      return;
    }
    for (const f of files) {
      const text = readFileSync(`${dir}/${f}`, "utf8");
      const start = text.indexOf("version: 0.1");
      if (start < 0) continue;
      const end = text.indexOf("- /run/secrets/dtr.cert.pem", start);
      const yaml = text
        .slice(start, end + "- /run/secrets/dtr.cert.pem".length)
        .replace(/&lt;/g, "<")
        .replace(/&gt;/g, ">")
        .replace("<dtr-url>:<dtr-port>", "dtr.example.com:4443")
        .replace("<cache-url>", "cache.example.com");
      const r = parseConfig(yaml);
      expect(r.ok, `${f}: ${JSON.stringify(r.ok ? [] : r.errors)}`).toBe(true);
    }
  });

  it("accepts the older {originhost, upstreamhosts} upstream form", () => {
    const r = parseConfig(
      SEED.replace(
        "            - https://dtr.example.com:443",
        "            - originhost: https://dtr.example.com\n              upstreamhosts:\n                - https://cache-a:443\n                - https://cache-b:5443",
      ),
    );
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.config.downstream.upstreams.map((u) => u.url)).toEqual(["https://cache-a", "https://cache-b:5443"]);
  });

  it("warns about unknown keys and names them", () => {
    const r = parseConfig(SEED.replace("log:\n  level: info", "log:\n  level: info\n  colour: blue"));
    expect(r.ok).toBe(true);
    expect(r.warnings).toEqual([expect.objectContaining({ path: "log.colour", line: 4 })]);
  });

  it("rejects a bad blobttl naming the key and its line", () => {
    const r = parseConfig(SEED.replace("blobttl: 24h", "blobttl: 1 day"));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors[0]).toMatchObject({ path: "middleware.registry[0].options.blobttl", line: 20 });
    expect(r.errors[0]?.message).toContain("1 day");
  });

  it.each([
    ["http.addr", "addr: 0.0.0.0:443", "addr: nowhere"],
    ["log.level", "level: info", "level: loud"],
    ["middleware.registry[0].options.upstreams[0]", "- https://dtr.example.com:443", "- ftp://dtr"],
    ["storage.delete.enabled", "enabled: true", "enabled: maybe"],
    ["middleware.registry[0].options.maxsize", "blobttl: 24h", "blobttl: 24h\n          maxsize: lots"],
    ["http.tls", "    key: /run/secrets/cache.key.pem\n", ""],
  ])("rejects a wrong %s", (key, from, to) => {
    const r = parseConfig(SEED.replace(from, to));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map((e) => e.path)).toContain(key);
  });

  it("requires the downstream middleware with at least one upstream", () => {
    const r = parseConfig(SEED.replace("name: downstream", "name: other"));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]?.path).toBe("middleware.registry");
  });

  it("reads our extra downstream options", () => {
    const r = parseConfig(
      SEED.replace(
        "blobttl: 24h",
        "blobttl: 24h\n          servestale: false\n          maxsize: 20GiB\n          upstreamconcurrency: 8\n          authttl: 10s",
      ),
    );
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.config.downstream).toMatchObject({ serveStale: false, maxSizeBytes: 20 * 1024 ** 3, upstreamConcurrency: 8, authTtlMs: 10_000 });
  });

  it("parses sizes with binary and decimal units", () => {
    expect(parseSize("1.5GiB")).toBe(1.5 * 1024 ** 3);
    expect(parseSize("500MB")).toBe(500e6);
    expect(parseSize(1234)).toBe(1234);
    expect(parseSize("-1")).toBeUndefined();
  });
});
