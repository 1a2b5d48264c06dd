// The config.yml contract between the controller (crds renders it from a CacheSpec) and the cache
// (cache-server parses it at start), checked as a property over generated specs: any spec that
// validates renders a config.yml the cache-server accepts, and what the cache reads back equals
// what the spec said. Values are drawn around the edges that drifted before (zero and sub-
// millisecond TTLs, sub-byte and huge size caps, bare-number nanosecond durations, odd paths, the
// debug listener's default port, upstream URLs with paths, queries or credentials). Both sides
// now come from @dtrcache/config-yml; this test holds the CacheSpec's validation to it.
import { describe, expect, it } from "vitest";
import { CONTAINER_PATHS, loadCacheSpecFromText, parseDuration, parseSize, renderCacheConfig } from "@dtrcache/crds";
import { parseConfig } from "@dtrcache/cache-server";

const SPECS = 1_000;

/** A small seeded generator (mulberry32), so a failure names a seed that reproduces it. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(r: () => number, items: readonly T[]): T {
  return items[Math.floor(r() * items.length)] as T;
}

function duration(r: () => number): string {
  const n = pick(r, [0, 1, 2, 59, 999, 1000, 999_999, 1_000_000, 86_400, 3_600_000_000_000, Math.floor(r() * 1e9)]);
  const unit = pick(r, ["", "ns", "us", "ms", "s", "m", "h"]);
  return `${n}${unit}`;
}

function size(r: () => number): string {
  const n = pick(r, ["0", "0.5", "1", "1.5", "512", "20", "8191", "8192", "9999", String(Math.floor(r() * 1e6))]);
  return `${n}${pick(r, ["B", "KiB", "MiB", "GiB", "TiB"])}`;
}

function specText(r: () => number): string {
  // 5001 is where the cache puts its debug listener when debugPort is unset.
  const port = pick(r, [1, 80, 443, 5000, 5001, 65535, 1 + Math.floor(r() * 65534)]);
  const debugPort = r() < 0.4 ? `\n  debugPort: ${pick(r, [5001, 9090, port])}` : "";
  const tls = pick(r, ["{generate: true}", "{disabled: true}"]);
  const scheme = tls === "{disabled: true}" ? "http" : "https";
  const path = pick(r, ["/var/lib/registry", "/data", '"/srv/cache store"', '"/x/#y"']);
  const storage = [`    path: ${path}`];
  // Outside /var/lib/registry the cache's user can write only through a mount (crds refuses it
  // otherwise); most such specs get one so the unusual paths still reach the renderer.
  if (path !== "/var/lib/registry" && r() < 0.8) storage.push("    volume: edge-blobs");
  if (r() < 0.7) storage.push(`    maxSize: ${size(r)}`);
  const upstreams =
    r() < 0.4
      ? [
          `  upstreams: [${pick(r, ["https://dtr.example.com:4443", "http://10.0.0.5:5000/", "https://hop.example.com/v2", "https://user:pw@hop.example.com", "https://hop.example.com?t=1", "ftp://hop.example.com"])}]`,
        ]
      : [];
  const blobTTL = r() < 0.3 ? String(pick(r, [0, 999_999, 1_000_000, 86_400_000_000_000, Math.floor(r() * 1e15)])) : duration(r);
  return [
    "apiVersion: cache.dtr.io/v1alpha1",
    "kind: DTR",
    "metadata: {name: dtr}",
    "spec: {url: https://dtr.example.com, admin: {username: admin, password: {env: DTR_PASSWORD}}}",
    "---",
    "apiVersion: cache.dtr.io/v1alpha1",
    "kind: ContentCache",
    "metadata: {name: edge}",
    "spec:",
    "  node: {hostname: node-1}",
    `  externalURL: ${scheme}://cache.example.com:${port}`,
    `  port: ${port}${debugPort}`,
    `  tls: ${tls}`,
    `  blobTTL: ${blobTTL}`,
    `  logLevel: ${pick(r, ["error", "warn", "info", "debug"])}`,
    ...upstreams,
    "  storage:",
    ...storage,
    "",
  ].join("\n");
}

describe("config.yml contract (crds renders, cache-server parses)", () => {
  it(`accepts every rendered config of ${SPECS} generated specs that validate, and reads back the spec's values`, () => {
    let validated = 0;
    let refused = 0;
    for (let seed = 1; seed <= SPECS; seed++) {
      const text = specText(rng(seed));
      const loaded = loadCacheSpecFromText(text, `generated-${seed}.yaml`);
      if (!loaded.ok) {
        refused++;
        continue;
      }
      validated++;
      const cache = loaded.spec.caches[0];
      if (!cache) throw new Error(`seed ${seed}: no cache`);
      const caBundle = seed % 2 === 0;
      let rendered: string;
      try {
        rendered = renderCacheConfig(cache, { httpSecret: "contract-secret", caBundle });
      } catch (err) {
        throw new Error(`seed ${seed}: a valid spec renders a config the cache refuses: ${(err as Error).message}\n${text}`, { cause: err });
      }
      const parsed = parseConfig(rendered);
      if (!parsed.ok)
        throw new Error(
          `seed ${seed}: the cache refuses a config rendered from a valid spec: ${parsed.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}\n${text}`,
        );
      const { spec } = cache;
      expect(parsed.config.listenPort, `seed ${seed}`).toBe(spec.port);
      expect(parsed.config.rootDirectory, `seed ${seed}`).toBe(spec.storage.path);
      expect(parsed.config.logLevel, `seed ${seed}`).toBe(spec.logLevel);
      expect(parsed.config.downstream.blobTtlMs, `seed ${seed}`).toBe(parseDuration(spec.blobTTL)?.milliseconds);
      expect(parsed.config.downstream.maxSizeBytes, `seed ${seed}`).toBe(spec.storage.maxSize === undefined ? undefined : parseSize(spec.storage.maxSize));
      expect(parsed.config.secret, `seed ${seed}`).toBe("contract-secret");
      expect(parsed.config.publicHost, `seed ${seed}`).toBe(spec.externalURL);
      expect(parsed.config.tls, `seed ${seed}`).toEqual(
        "disabled" in spec.tls ? undefined : { certificate: CONTAINER_PATHS.cacheCert, key: CONTAINER_PATHS.cacheKey },
      );
      expect(parsed.config.debug, `seed ${seed}`).toEqual(
        spec.debugPort === undefined ? { host: "127.0.0.1", port: 5001, explicit: false } : { host: "0.0.0.0", port: spec.debugPort, explicit: true },
      );
      expect(parsed.config.downstream.cas, `seed ${seed}`).toEqual(caBundle ? [CONTAINER_PATHS.caBundle] : []);
      expect(
        parsed.config.downstream.upstreams.map((u) => new URL(u.url).href),
        `seed ${seed}`,
      ).toEqual(cache.upstreamUrls.map((u) => new URL(u).href));
    }
    // The generator must exercise both sides of the boundaries, or the property says little.
    expect(validated).toBeGreaterThan(SPECS / 4);
    expect(refused).toBeGreaterThan(SPECS / 20);
    // ~4 s alone; a loaded machine running every unit file at once needs more than the default 5 s.
  }, 60_000);
});
