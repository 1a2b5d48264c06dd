// Writer and reader of one format, tested against each other: every generated document either
// renders to a config.yml the reader accepts and reads back as the document said, or is refused by
// the writer with the fields the contract's rules name (never silently written). Values are drawn
// around the edges: YAML-significant characters in strings, 0/1/65535 ports, sub-millisecond and
// bare-number durations, sub-byte and 2^53-byte sizes, colliding listeners, credentials in URLs.
import { describe, expect, it } from "vitest";
import { parseDuration } from "./duration.js";
import { DEFAULT_LIMITS, LOG_LEVELS, type CacheConfig } from "./model.js";
import { parseConfig } from "./parse.js";
import { ConfigRenderError, renderConfig, type ConfigDocument } from "./render.js";
import { addressesCollide, checkBlobTtl, checkMaxSize, checkUpstreamUrl, DEFAULT_DEBUG_LISTEN, type ListenAddress } from "./rules.js";

const DOCUMENTS = 2_000;
const URL_PASSWORD = "pw-Z9q";

/** mulberry32: a failure names the seed that reproduces it. */
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
const pick = <T>(r: () => number, items: readonly T[]): T => items[Math.floor(r() * items.length)] as T;

// Strings YAML would read as something else when written plain: booleans, numbers, null,
// comments, flow and block indicators, anchors, tags, quotes, leading/trailing blanks.
const AWKWARD = [
  "/var/lib/registry",
  "/srv/cache store",
  "/x/#y",
  "yes",
  "true",
  "123",
  "0x1F",
  "1e3",
  "null",
  "~",
  "- a",
  "a: b",
  "'q'",
  '"dq"',
  "/données",
  " lead",
  "trail ",
  "@at",
  "*star",
  "&anchor",
  "!tag",
  "%pct",
  "{x}",
  "[x]",
  ">fold",
  "|lit",
  "a\\b",
  "tab\there",
  "x,y",
  "`tick`",
  "  ",
];

function string(r: () => number): string {
  return r() < 0.7 ? pick(r, AWKWARD) : Math.floor(r() * 1e9).toString(36);
}

function address(r: () => number): ListenAddress {
  return { host: pick(r, ["0.0.0.0", "127.0.0.1", "::1", "localhost", "10.1.2.3"]), port: pick(r, [0, 1, 443, 5000, 5001, 65535, Math.floor(r() * 65536)]) };
}

function duration(r: () => number): string {
  return `${pick(r, [0, 1, 999, 999_999, 1_000_000, 86_400, Math.floor(r() * 1e9)])}${pick(r, ["", "ns", "us", "ms", "s", "m", "h", "d", " h"])}`;
}

function upstream(r: () => number): string {
  const host = pick(r, ["dtr.example.com", "dtr.example.com:443", "10.0.0.5:4443", "[::1]:5000", "cache-a"]);
  const scheme = r() < 0.95 ? pick(r, ["https", "http"]) : "ftp";
  const tail = r() < 0.9 ? pick(r, ["", "/"]) : pick(r, ["/v2", "?token=x"]);
  const user = r() < 0.05 ? `admin:${URL_PASSWORD}@` : "";
  return `${scheme}://${user}${host}${tail}`;
}

function documentOf(r: () => number): ConfigDocument {
  const listen = address(r);
  return {
    logLevel: pick(r, LOG_LEVELS),
    rootDirectory: string(r),
    listen,
    secret: pick(r, ["s3cr3t", "p@ss: #word", Math.floor(r() * 1e15).toString(36)]),
    host: pick(r, ["https://cache.example.com", "https://cache.example.com:5443", string(r)]),
    ...(r() < 0.6 ? { tls: { certificate: string(r), key: string(r) } } : {}),
    ...(r() < 0.4 ? { debug: r() < 0.1 ? listen : address(r) } : {}),
    blobTtl: r() < 0.7 ? "24h" : duration(r),
    upstreams: Array.from({ length: 1 + Math.floor(r() * 3) }, () => upstream(r)),
    cas: Array.from({ length: Math.floor(r() * 3) }, () => string(r)),
    ...(r() < 0.3
      ? {
          maxSize: `${pick(r, ["0", "0.5", "1", "1.5", "20", "8191", "8192", String(Math.floor(r() * 1e6))])}${pick(r, ["B", "KiB", "MiB", "GiB", "TiB", "MB", "GB", ""])}`,
        }
      : {}),
  };
}

/** The fields whose values the contract's rules refuse, as config.yml paths. */
function refusedFields(doc: ConfigDocument): string[] {
  const options = "middleware.registry[0].options";
  const refused: string[] = [];
  const strings = [
    ["storage.filesystem.rootdirectory", doc.rootDirectory],
    ["http.tls.certificate", doc.tls?.certificate],
    ["http.tls.key", doc.tls?.key],
    ["http.host", doc.host],
  ] as const;
  for (const [path, value] of strings) if (value !== undefined && value.trim() === "") refused.push(path);
  if (addressesCollide(doc.debug ?? DEFAULT_DEBUG_LISTEN, doc.listen)) refused.push(doc.debug ? "http.debug.addr" : "http.addr");
  if (!checkBlobTtl(doc.blobTtl).ok) refused.push(`${options}.blobttl`);
  doc.upstreams.forEach((u, i) => {
    if (!checkUpstreamUrl(u).ok) refused.push(`${options}.upstreams[${i}]`);
  });
  doc.cas.forEach((ca, i) => {
    if (ca.trim() === "") refused.push(`${options}.cas[${i}]`);
  });
  if (doc.maxSize !== undefined && !checkMaxSize(doc.maxSize).ok) refused.push(`${options}.maxsize`);
  return refused;
}

/** What the cache must read from a rendered document, written out field by field. */
function expectedConfig(doc: ConfigDocument): CacheConfig {
  const upstreams: string[] = [];
  for (const u of doc.upstreams) {
    const checked = checkUpstreamUrl(u);
    if (checked.ok && !upstreams.includes(checked.value)) upstreams.push(checked.value);
  }
  return {
    logLevel: doc.logLevel,
    rootDirectory: doc.rootDirectory,
    deleteEnabled: true,
    listenHost: doc.listen.host,
    listenPort: doc.listen.port,
    debug: doc.debug ? { ...doc.debug, explicit: true } : { ...DEFAULT_DEBUG_LISTEN, explicit: false },
    limits: DEFAULT_LIMITS,
    secret: doc.secret,
    publicHost: doc.host,
    tls: doc.tls,
    downstream: {
      blobTtlMs: parseDuration(doc.blobTtl)?.milliseconds ?? Number.NaN,
      upstreams: upstreams.map((url) => ({ url })),
      cas: doc.cas,
      serveStale: true,
      authTtlMs: 30_000,
      outageAllowanceMs: 600_000,
      notFoundTtlMs: 5_000,
      maxSizeBytes: doc.maxSize === undefined ? undefined : (checkMaxSize(doc.maxSize) as { value: number }).value,
      highWatermark: 0.9,
      lowWatermark: 0.8,
      upstreamConcurrency: 64,
      sweepIntervalMs: 60_000,
    },
  };
}

describe("renderConfig and parseConfig (one format, one set of rules)", () => {
  it(`round-trips ${DOCUMENTS} generated documents, or refuses them naming the fields the rules refuse`, () => {
    let written = 0;
    let refused = 0;
    for (let seed = 1; seed <= DOCUMENTS; seed++) {
      const doc = documentOf(rng(seed));
      const fields = refusedFields(doc);
      let rendered: ReturnType<typeof renderConfig> | undefined;
      try {
        rendered = renderConfig(doc);
      } catch (err) {
        if (!(err instanceof ConfigRenderError)) throw err;
        refused++;
        expect(fields, `seed ${seed}: refused ${err.message}`).not.toEqual([]);
        expect(err.problems.map((p) => p.path).sort(), `seed ${seed}`).toEqual(expect.arrayContaining(fields));
        // Secrets never in error text: neither the http.secret nor a password in an upstream URL.
        expect(err.message, `seed ${seed}`).not.toContain(URL_PASSWORD);
        if (doc.secret.length > 4) expect(err.message, `seed ${seed}`).not.toContain(doc.secret);
        continue;
      }
      written++;
      expect(fields, `seed ${seed}: the writer wrote what the rules refuse`).toEqual([]);
      const read = parseConfig(rendered.text);
      if (!read.ok) throw new Error(`seed ${seed}: the reader refuses what the writer wrote: ${JSON.stringify(read.errors)}\n${rendered.text}`);
      expect(read.warnings, `seed ${seed}`).toEqual([]);
      expect(read.config, `seed ${seed}\n${rendered.text}`).toEqual(expectedConfig(doc));
      expect(rendered.config).toEqual(read.config);
    }
    // Both sides of the boundaries must be exercised, or the property says little.
    console.log(`config-yml round trip: ${written} written and read back, ${refused} refused`);
    expect(written).toBeGreaterThan(DOCUMENTS / 10);
    expect(refused).toBeGreaterThan(DOCUMENTS / 10);
    // ~2 s alone; more when every unit file runs at once.
  }, 60_000);

  it("writes the runbook's layout: keys, order and the six-space middleware indent", () => {
    const { text } = renderConfig({
      logLevel: "info",
      rootDirectory: "/var/lib/registry",
      listen: { host: "0.0.0.0", port: 443 },
      secret: "generate-random-secret",
      host: "https://cache.example.com",
      tls: { certificate: "/run/secrets/cache.cert.pem", key: "/run/secrets/cache.key.pem" },
      blobTtl: "24h",
      upstreams: ["https://dtr.example.com:4443"],
      cas: ["/run/secrets/dtr.cert.pem"],
    });
    expect(text).toBe(`version: 0.1
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
            - https://dtr.example.com:4443
          cas:
            - /run/secrets/dtr.cert.pem
`);
  });

  it("refuses a zero blobttl with the field, its line and the value", () => {
    const doc: ConfigDocument = {
      logLevel: "info",
      rootDirectory: "/r",
      listen: { host: "0.0.0.0", port: 443 },
      secret: "s",
      host: "https://c",
      blobTtl: "0s",
      upstreams: ["https://dtr"],
      cas: [],
    };
    const err = (() => {
      try {
        renderConfig(doc);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigRenderError);
    expect(err).toMatchObject({
      code: "CONFIG_RENDER_REFUSED",
      problems: [
        { path: "middleware.registry[0].options.blobttl", line: 17, message: `"0s" must be at least 1ms (a bare number counts nanoseconds: 1000000 is 1ms)` },
      ],
    });
  });
});
