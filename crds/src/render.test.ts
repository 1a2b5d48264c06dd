import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ConfigRenderError } from "@dtrcache/config-yml";
import { loadCacheSpec, loadCacheSpecFromText } from "./load.js";
import type { CacheSpec, ResolvedCache } from "./model.js";
import { CONTAINER_PATHS, generateHttpSecret, renderCacheConfig } from "./render.js";

const crdsDir = fileURLToPath(new URL("../", import.meta.url));
const SECRET = "c2VjcmV0LWZvci10ZXN0cy1vbmx5";

async function load(file: string): Promise<CacheSpec> {
  const result = await loadCacheSpec(path.join(crdsDir, "examples", file));
  if (!result.ok) throw new Error(`example ${file} does not load: ${JSON.stringify(result.issues)}`);
  return result.spec;
}

function only(spec: CacheSpec, name: string): ResolvedCache {
  const found = spec.caches.find((c) => c.name === name);
  if (!found) throw new Error(`no cache ${name}`);
  return found;
}

let runbook: ResolvedCache;
let chained: CacheSpec;

beforeAll(async () => {
  runbook = only(await load("runbook.yaml"), "region-asia");
  chained = await load("chained.yaml");
});

describe("renderCacheConfig", () => {
  it("renders the runbook example as the runbook's config.yml, apart from the secret and the hosts", () => {
    const rendered = renderCacheConfig(runbook, { httpSecret: SECRET, caBundle: true });
    // The runbook's placeholders, filled with the example's hosts and the secret under test.
    const seed = readFileSync(path.join(crdsDir, "test-fixtures", "runbook-config.yml"), "utf8")
      .replace("generate-random-secret", SECRET)
      .replace("https://<cache-url>", "https://dtr-cache.example.com")
      .replace("https://<dtr-url>:<dtr-port>", "https://dtr.example.com:443");
    expect(parse(rendered)).toEqual(parse(seed));
    // Same keys in the same order, at every level.
    const keyPaths = (value: unknown, prefix = ""): string[] =>
      value !== null && typeof value === "object" ? Object.entries(value).flatMap(([k, v]) => [`${prefix}${k}`, ...keyPaths(v, `${prefix}${k}.`)]) : [];
    expect(keyPaths(parse(rendered))).toEqual(keyPaths(parse(seed)));
    // And, line for line, the runbook's layout.
    expect(rendered).toBe(seed);
  });

  it("renders spec.debugPort as http.debug.addr on all interfaces, after tls", () => {
    const withDebug = { ...runbook, spec: { ...runbook.spec, debugPort: 5001 } };
    const rendered = renderCacheConfig(withDebug, { httpSecret: SECRET, caBundle: true });
    const http = (parse(rendered) as { http: Record<string, unknown> }).http;
    expect(http.debug).toEqual({ addr: "0.0.0.0:5001" });
    expect(Object.keys(http)).toEqual(["addr", "secret", "host", "tls", "debug"]);
  });

  it("gives the same text for the same cache and secret, every time", () => {
    const first = renderCacheConfig(runbook, { httpSecret: SECRET, caBundle: true });
    const again = renderCacheConfig(structuredClone(runbook), { httpSecret: SECRET, caBundle: true });
    expect(again).toBe(first);
  });

  it("changes only http.secret when the secret changes", () => {
    const a = parse(renderCacheConfig(runbook, { httpSecret: "one", caBundle: true })) as { http: Record<string, unknown> };
    const b = parse(renderCacheConfig(runbook, { httpSecret: "two", caBundle: true })) as { http: Record<string, unknown> };
    expect(a.http.secret).toBe("one");
    expect(b.http.secret).toBe("two");
    expect({ ...a, http: { ...a.http, secret: "" } }).toEqual({ ...b, http: { ...b.http, secret: "" } });
  });

  it("omits http.tls for a plain-HTTP cache and keeps it for generated TLS", () => {
    const plain = { ...runbook, spec: { ...runbook.spec, tls: { disabled: true as const }, externalURL: "http://cache:5000", port: 5000 } };
    const config = parse(renderCacheConfig(plain, { httpSecret: SECRET, caBundle: false })) as { http: Record<string, unknown> };
    expect(config.http).toEqual({ addr: "0.0.0.0:5000", secret: SECRET, host: "http://cache:5000" });
    const generated = { ...runbook, spec: { ...runbook.spec, tls: { generate: true as const } } };
    const withTls = parse(renderCacheConfig(generated, { httpSecret: SECRET, caBundle: false })) as { http: { tls: unknown } };
    expect(withTls.http.tls).toEqual({ certificate: CONTAINER_PATHS.cacheCert, key: CONTAINER_PATHS.cacheKey });
  });

  it("lists cas only when a CA bundle is mounted", () => {
    type Options = { middleware: { registry: { name: string; options: Record<string, unknown> }[] } };
    const withCa = parse(renderCacheConfig(runbook, { httpSecret: SECRET, caBundle: true })) as Options;
    const withoutCa = parse(renderCacheConfig(runbook, { httpSecret: SECRET, caBundle: false })) as Options;
    expect(withCa.middleware.registry[0]?.options.cas).toEqual([CONTAINER_PATHS.caBundle]);
    expect(withoutCa.middleware.registry[0]?.options).not.toHaveProperty("cas");
  });

  it("points a chained cache at the cache it chains through, and the first cache at DTR", () => {
    const upstreams = (name: string): unknown => {
      const config = parse(renderCacheConfig(only(chained, name), { httpSecret: SECRET, caBundle: false })) as {
        middleware: { registry: { options: { upstreams: unknown } }[] };
      };
      return config.middleware.registry[0]?.options.upstreams;
    };
    expect(upstreams("region-eu")).toEqual(["https://dtr.example.com"]);
    expect(upstreams("region-eu-office")).toEqual(["https://cache-eu.example.com:5443"]);
  });

  it("writes the spec's port, storage path, log level and blob TTL", () => {
    const eu = only(chained, "region-eu");
    const custom = { ...eu, spec: { ...eu.spec, logLevel: "debug" as const, storage: { path: "/srv/blobs" } } };
    const config = parse(renderCacheConfig(custom, { httpSecret: SECRET, caBundle: false })) as Record<string, Record<string, unknown>>;
    expect(config.log).toEqual({ level: "debug" });
    expect(config.storage).toEqual({ delete: { enabled: true }, filesystem: { rootdirectory: "/srv/blobs" } });
    expect(config.http?.addr).toBe("0.0.0.0:5443");
    expect(JSON.stringify(config.middleware)).toContain('"blobttl":"72h"');
  });

  it("passes storage.maxSize to the cache as the downstream option maxsize, and only when set", () => {
    const eu = only(chained, "region-eu");
    type Downstream = { middleware: { registry: { options: Record<string, unknown> }[] } };
    const capped = { ...eu, spec: { ...eu.spec, storage: { path: "/var/lib/registry", maxSize: "20GiB" } } };
    const withCap = parse(renderCacheConfig(capped, { httpSecret: SECRET, caBundle: false })) as Downstream;
    expect(withCap.middleware.registry[0]?.options["maxsize"]).toBe("20GiB");
    const without = parse(renderCacheConfig(eu, { httpSecret: SECRET, caBundle: false })) as Downstream;
    expect(without.middleware.registry[0]?.options).not.toHaveProperty("maxsize");
  });

  it("quotes values YAML would read as something else", () => {
    const result = loadCacheSpecFromText(
      "apiVersion: cache.dtr.io/v1alpha1\nkind: DTR\nmetadata: {name: d}\nspec: {url: https://d.example.com, admin: {username: a, password: {env: P}}}\n---\napiVersion: cache.dtr.io/v1alpha1\nkind: ContentCache\nmetadata: {name: c}\nspec: {node: {hostname: n}, externalURL: https://c.example.com, tls: {generate: true}, blobTTL: 5000000000}\n",
      "q.yaml",
    );
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    const cache = result.spec.caches[0];
    if (!cache) throw new Error("no cache");
    const text = renderCacheConfig(cache, { httpSecret: "12345", caBundle: false });
    const config = parse(text) as { http: { secret: unknown }; middleware: { registry: { options: { blobttl: unknown } }[] } };
    expect(config.http.secret).toBe("12345");
    expect(config.middleware.registry[0]?.options.blobttl).toBe("5000000000");
  });

  // Validation is the first line (a spec with these values never loads); the writer is the second,
  // for a ResolvedCache built by hand or by a future code path that skips it. Before the
  // config.yml contract package, these rendered without complaint and the cache refused them.
  it.each([
    ["a zero blobTTL", { blobTTL: "0s" }, "middleware.registry[0].options.blobttl"],
    ["a sub-byte maxSize", { storage: { path: "/var/lib/registry", maxSize: "0.5B" } }, "middleware.registry[0].options.maxsize"],
    ["port 5001 with the debug listener at its default", { port: 5001 }, "http.addr"],
  ])("refuses to render %s, naming the config.yml field, without the secret in the message", (_name, change, field) => {
    const broken = { ...runbook, spec: { ...runbook.spec, ...change } };
    let refused: unknown;
    try {
      renderCacheConfig(broken, { httpSecret: SECRET, caBundle: true });
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(ConfigRenderError);
    const err = refused as ConfigRenderError;
    expect(err.code).toBe("CONFIG_RENDER_REFUSED");
    expect(err.problems.map((p) => p.path)).toEqual([field]);
    expect(err.message).not.toContain(SECRET);
  });
});

describe("generateHttpSecret", () => {
  it("makes a different url-safe secret of 43 characters each time", () => {
    const secrets = Array.from({ length: 20 }, () => generateHttpSecret());
    expect(new Set(secrets).size).toBe(20);
    for (const secret of secrets) expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});
