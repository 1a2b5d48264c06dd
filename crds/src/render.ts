// The pure renderer: one resolved cache -> the cache's config.yml, laid out exactly like the
// runbook's (same keys, same order, same indentation), so an operator can diff the two.
import { randomBytes } from "node:crypto";
import { parse } from "yaml";
import type { ResolvedCache } from "./model.js";

/** Where the controller mounts each file inside the cache container (the runbook's paths). */
export const CONTAINER_PATHS = {
  config: "/config.yml",
  cacheCert: "/run/secrets/cache.cert.pem",
  cacheKey: "/run/secrets/cache.key.pem",
  caBundle: "/run/secrets/dtr.cert.pem",
} as const;

export interface RenderOptions {
  /** The registry's http.secret; generated once per cache and kept, so every replica shares it. */
  httpSecret: string;
  /** true when a CA bundle secret is mounted at CONTAINER_PATHS.caBundle */
  caBundle: boolean;
}

/** 32 random bytes, base64url: safe in YAML, URLs and Swarm secret payloads. */
export function generateHttpSecret(): string {
  return randomBytes(32).toString("base64url");
}

export function renderCacheConfig(cache: ResolvedCache, options: RenderOptions): string {
  const { spec } = cache;
  const lines = [
    "version: 0.1",
    "log:",
    `  level: ${scalar(spec.logLevel)}`,
    "storage:",
    "  delete:",
    "    enabled: true",
    "  filesystem:",
    `    rootdirectory: ${scalar(spec.storage.path)}`,
    "http:",
    `  addr: ${scalar(`0.0.0.0:${spec.port}`)}`,
    `  secret: ${scalar(options.httpSecret)}`,
    `  host: ${scalar(spec.externalURL)}`,
  ];
  // Generated TLS material is mounted at the same paths as user files; only plain HTTP has none.
  if (!("disabled" in spec.tls)) {
    lines.push("  tls:", `    certificate: ${scalar(CONTAINER_PATHS.cacheCert)}`, `    key: ${scalar(CONTAINER_PATHS.cacheKey)}`);
  }
  // distribution's debug listener (/metrics, /healthz), on all interfaces so the published port
  // reaches it; absent, the cache keeps it on the container's loopback, and the runbook example
  // renders exactly as the runbook.
  if (spec.debugPort !== undefined) lines.push("  debug:", `    addr: ${scalar(`0.0.0.0:${spec.debugPort}`)}`);
  // The runbook indents the middleware list by six; kept so the file reads like the runbook.
  lines.push("middleware:", "  registry:", "      - name: downstream", "        options:", `          blobttl: ${scalar(spec.blobTTL)}`, "          upstreams:");
  for (const url of cache.upstreamUrls) lines.push(`            - ${scalar(url)}`);
  if (options.caBundle) lines.push("          cas:", `            - ${scalar(CONTAINER_PATHS.caBundle)}`);
  // Not in the runbook's format: this project's cache-server reads it (LRU cap); emitted only when
  // the spec asks for a cap, so the runbook example renders exactly as the runbook.
  if (spec.storage.maxSize !== undefined) lines.push(`          maxsize: ${scalar(spec.storage.maxSize)}`);
  return `${lines.join("\n")}\n`;
}

/** Plain when YAML reads it back as the same string, else double-quoted. */
function scalar(value: string): string {
  let plain: boolean;
  try {
    plain = !/[\n#]/.test(value) && parse(value) === value;
  } catch {
    plain = false;
  }
  return plain ? value : JSON.stringify(value);
}
