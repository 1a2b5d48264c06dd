// The CacheSpec side of the config.yml contract: one resolved cache -> the ConfigDocument that
// @dtrcache/config-yml writes (and checks with the cache's own reader), plus where the controller
// mounts each file. The layout and every rule live in that package, not here.
import { randomBytes } from "node:crypto";
import { renderConfig, type ConfigDocument } from "@dtrcache/config-yml";
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

/** The document a resolved cache renders to; exported for the contract tests. */
export function cacheConfigDocument(cache: ResolvedCache, options: RenderOptions): ConfigDocument {
  const { spec } = cache;
  return {
    logLevel: spec.logLevel,
    rootDirectory: spec.storage.path,
    listen: { host: "0.0.0.0", port: spec.port },
    secret: options.httpSecret,
    host: spec.externalURL,
    // Generated TLS material is mounted at the same paths as user files; only plain HTTP has none.
    ...(!("disabled" in spec.tls) ? { tls: { certificate: CONTAINER_PATHS.cacheCert, key: CONTAINER_PATHS.cacheKey } } : {}),
    // distribution's debug listener on all interfaces so the published port reaches it; absent,
    // the cache keeps it on the container's loopback and the runbook example renders unchanged.
    ...(spec.debugPort !== undefined ? { debug: { host: "0.0.0.0", port: spec.debugPort } } : {}),
    blobTtl: spec.blobTTL,
    upstreams: cache.upstreamUrls,
    cas: options.caBundle ? [CONTAINER_PATHS.caBundle] : [],
    ...(spec.storage.maxSize !== undefined ? { maxSize: spec.storage.maxSize } : {}),
  };
}

/**
 * The cache's config.yml for one resolved cache. Throws ConfigRenderError (code
 * CONFIG_RENDER_REFUSED) only if validation let through a value the cache would refuse.
 */
export function renderCacheConfig(cache: ResolvedCache, options: RenderOptions): string {
  return renderConfig(cacheConfigDocument(cache, options)).text;
}
