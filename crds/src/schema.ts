// The CacheSpec resource: Kubernetes-style documents that describe the DTR a set of content
// caches serve, and each cache. This file is the contract between the user's YAML, the
// controller, and the renderer; every field carries a description (it feeds the generated JSON
// Schema and the configuration reference) and, where the runbook has one, its default.
//
// Two kinds:
//   kind: DTR           one per DTR the caches serve (URL, how to trust it, admin credentials)
//   kind: ContentCache  one per cache (node, image, port, TLS, storage, blobTTL, upstreams, users)
//
// Secrets are never inline: credentials and keys are references to environment variables or
// files. Schemas are strict (unknown fields are errors) so a typo never silently does nothing.
import { posix } from "node:path";
import { z } from "zod";
import { parseDuration } from "./duration.js";
import { BLOB_TTL_MINIMUM, checkBlobTtl, checkListeners, checkMaxSize, checkUpstreamUrl } from "@dtrcache/config-yml";
import { SIZE_HINT } from "./size.js";

export const API_VERSION = "cache.dtr.io/v1alpha1";
export const KIND_DTR = "DTR";
export const KIND_CONTENT_CACHE = "ContentCache";

/** DNS-1123 label: also safe inside Swarm object names and Docker labels. */
const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;

export const resourceName = z
  .string()
  .regex(NAME_PATTERN, "must be lower-case letters, digits and '-', start and end alphanumeric, at most 40 characters")
  .describe("Name of the resource; used as the key in Swarm object names and DTR registrations.");

export const metadataSchema = z
  .strictObject({
    name: resourceName,
    labels: z.record(z.string(), z.string()).optional().describe("Free-form labels; copied to nothing, for the user's bookkeeping."),
    generation: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe(
        "Set by the in-swarm store (`dtrcache get -o yaml` shows it). When present in an applied document, the write succeeds only if it is still the stored generation (optimistic concurrency); ignored by file-mode loading.",
      ),
  })
  .describe("Standard object metadata.");

/** An http(s) URL with scheme, host and optional port, and no path, query or credentials. */
export const originUrl = z
  .string()
  // The cache's own rule for an upstream (@dtrcache/config-yml); DTR's URL and externalURL become
  // upstreams of chained caches, so all three follow it.
  .refine(
    (value) => checkUpstreamUrl(value).ok,
    "must be an http:// or https:// URL with a host and optional port, and no path, credentials or query (e.g. https://dtr.example.com:443)",
  )
  .describe("scheme://host[:port]");

export const durationString = z
  .union([z.string(), z.number().int().nonnegative()], { error: "must be a duration such as 24h" })
  .refine((value) => parseDuration(value) !== undefined, { message: "is not a duration (use e.g. 24h)" })
  .transform((value) => String(value).trim())
  .describe("Integer with a unit out of ns, us, ms, s, m, h (e.g. 24h); a bare integer counts nanoseconds, as in the registry's config.yml.");

/** Where a secret value comes from. Exactly one of env or file. */
export const secretRef = z
  .union(
    [
      z.strictObject({
        env: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name")
          .describe("Environment variable that holds the value."),
      }),
      z.strictObject({ file: z.string().min(1).describe("Path of a file that holds the value (e.g. a Swarm secret under /run/secrets).") }),
      z
        .strictObject({
          secret: z
            .string()
            .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/, "must be a Swarm secret name")
            .describe(
              "Name of an existing Swarm secret that the controller's service mounts (read at /run/secrets/NAME); `dtrcache apply` checks that it exists.",
            ),
        })
        // Read like {file}: the controller's service mounts the secret at /run/secrets/NAME.
        .transform((ref) => ({ file: `/run/secrets/${ref.secret}`, secret: ref.secret })),
    ],
    { error: "must be {env: NAME}, {file: PATH} or {secret: NAME}" },
  )
  .describe("A reference to a secret value: {env: NAME}, {file: PATH} or {secret: NAME} (a Swarm secret). Inline values are refused.");

export const pemFile = z.string().min(1).describe("Path of a PEM file, relative to the spec file's directory or absolute.");

const swarmObjectName = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/, "must be a Swarm object name");

/** An existing Swarm secret, mounted into the cache's service by name (the controller cannot read it). */
export const swarmSecretRef = z.strictObject({
  secret: swarmObjectName.describe(
    "Name of an existing Swarm secret (e.g. made with `docker secret create cache.key.pem key.pem`); mounted into the cache's service, never read by the controller. `dtrcache apply` checks that it exists.",
  ),
});

/** An existing Swarm config: readable through the Engine API, so the controller can check and combine it. */
export const swarmConfigRef = z.strictObject({
  config: swarmObjectName.describe(
    "Name of an existing Swarm config (e.g. `docker config create dtr-ca.pem ca.pem`); the controller reads it through the Engine API. `dtrcache apply` checks that it exists.",
  ),
});

/**
 * Public PEM material (certificates, CAs): a file on the controller's filesystem (process mode),
 * or a Swarm secret or config by name (in-cluster mode: the controller's stack mounts no files).
 */
export const pemSource = z
  .union([pemFile, swarmSecretRef, swarmConfigRef], { error: "must be a file path, {secret: NAME} or {config: NAME}" })
  .describe("A PEM file path, {secret: NAME} (an existing Swarm secret) or {config: NAME} (an existing Swarm config).");

/** A private key: a file, or a Swarm secret (never a config: configs are readable by every API user). */
export const keySource = z
  .union([pemFile, swarmSecretRef], {
    error: "must be a file path or {secret: NAME} (a private key is never a Swarm config: configs are readable by every API user)",
  })
  .describe("A PEM private key file path, or {secret: NAME} (an existing Swarm secret).");

export const dtrTrustSchema = z
  .strictObject({
    caFile: pemSource
      .optional()
      .describe(
        "PEM CA certificate that signed DTR's TLS certificate (the runbook's dtr.cert.pem): a file, {secret: NAME} or {config: NAME}. A secret is mounted into the cache only (alone as its CA bundle); the controller reads it at /run/secrets/NAME if its own service mounts it. A config is read through the API.",
      ),
    fetchCA: z
      .boolean()
      .default(false)
      .describe("Fetch DTR's CA from its /ca endpoint without verifying TLS (trust on first use, like the runbook's `curl -sk`). Logged as a warning."),
  })
  .describe("How the controller and the caches trust DTR's TLS certificate. With neither field, the system's public roots are used.");

export const dtrSpecSchema = z
  .strictObject({
    url: originUrl.describe("DTR's URL, e.g. https://dtr.example.com:443."),
    trust: dtrTrustSchema.default({ fetchCA: false }),
    admin: z
      .strictObject({
        username: z.string().min(1).describe("DTR admin account used to register caches and set user settings."),
        password: secretRef.describe("The admin's password or an access token, by reference."),
      })
      .describe("Admin credentials for DTR's API (HTTP basic auth)."),
    userConcurrency: z.number().int().min(1).max(32).default(4).describe("How many user settings are updated at once."),
  })
  .describe("A DTR that content caches serve.");

export const dtrDocumentSchema = z
  .strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(KIND_DTR),
    metadata: metadataSchema,
    spec: dtrSpecSchema,
  })
  .describe("A DTR instance that content caches are registered with.");

export const nodeSelectorSchema = z
  .union(
    [
      z.strictObject({ hostname: z.string().min(1).describe("Swarm node hostname (as `docker node ls` shows it); the controller labels this node.") }),
      z.strictObject({
        existingLabel: z
          .string()
          .regex(/^[A-Za-z0-9._-]+=[^=\s]*$/, "must be key=value")
          .describe("A node label already set by the operator (key=value); the controller places the cache on it and never changes node labels."),
      }),
    ],
    { error: "must be {hostname: NODE} or {existingLabel: key=value}" },
  )
  .describe("Which node runs the cache: a hostname (labelled by the controller) or an existing node label.");

export const tlsSchema = z
  .union(
    [
      z.strictObject({
        certFile: pemSource.describe(
          "The cache's certificate, intermediates appended (the runbook's cache.cert.pem): a file, {secret: NAME} or {config: NAME}.",
        ),
        keyFile: keySource.describe("The cache's unencrypted private key (the runbook's cache.key.pem): a file or {secret: NAME}."),
      }),
      z.strictObject({
        generate: z.literal(true).describe("Let the controller generate a self-signed certificate for the cache's external host name."),
      }),
      z.strictObject({ disabled: z.literal(true).describe("Serve plain HTTP (e.g. http://cache:5000); no TLS material is created.") }),
    ],
    { error: "must be exactly one of {certFile, keyFile}, {generate: true} or {disabled: true}" },
  )
  .describe("TLS material for the cache: files, `generate: true`, or `disabled: true` for plain HTTP.");

/** The cache image's storage directory: the one place its unprivileged user may write without a mount. */
export const IMAGE_STORAGE_PATH = "/var/lib/registry";

/** Whether the cache's unprivileged user can create `path` in the image's own filesystem (at or under IMAGE_STORAGE_PATH). */
export function imageWritable(path: string): boolean {
  const normal = posix.normalize(path).replace(/\/+$/, "");
  return normal === IMAGE_STORAGE_PATH || normal.startsWith(`${IMAGE_STORAGE_PATH}/`);
}

export const storageSchema = z
  .strictObject({
    path: z
      .string()
      .startsWith("/", "must be an absolute path inside the container")
      .default(IMAGE_STORAGE_PATH)
      .describe(
        `storage.filesystem.rootdirectory inside the container. Without volume or bind it must be ${IMAGE_STORAGE_PATH} or below it: the cache runs as an unprivileged user that can write nowhere else in its image.`,
      ),
    volume: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, "must be a Docker volume name")
      .optional()
      .describe("Named volume mounted at `path`, so cached data survives a task restart on the same node."),
    bind: z.string().startsWith("/", "must be an absolute host path").optional().describe("Host directory bind-mounted at `path` (must exist on the node)."),
    maxSize: z
      .string()
      .regex(/^\d+(\.\d+)?(B|KiB|MiB|GiB|TiB)$/, "must be a size such as 20GiB")
      // The cache's own rule for maxsize (@dtrcache/config-yml): what validates here, it accepts.
      .refine((value) => checkMaxSize(value).ok, `must be ${SIZE_HINT}`)
      .optional()
      .describe(
        "Optional cap on cached data; least-recently-used blobs are evicted above it. Rendered as the downstream option `maxsize`, which this project's cache-server honours (not part of DTR's own cache format).",
      ),
  })
  .refine((s) => !(s.volume && s.bind), { message: "cannot be combined with storage.volume; set at most one of volume and bind", path: ["bind"] })
  // The image makes only its storage directory the unprivileged user's; anywhere else the cache
  // cannot create its directories and exits at start (issue 10, item 11). A volume or bind brings
  // its own directory, whose ownership is then the operator's to set.
  .refine((s) => s.volume !== undefined || s.bind !== undefined || imageWritable(s.path), {
    message: `is not writable by the cache's unprivileged user: without storage.volume or storage.bind, storage.path must be ${IMAGE_STORAGE_PATH} or below it`,
    path: ["path"],
  })
  .describe("Where cached blobs live. Without volume or bind, data lives in the container and is lost on reschedule (the runbook's default).");

export const upstreamSchema = z
  .union(
    [
      originUrl.describe("URL of the next hop (DTR or any registry v2)."),
      z.strictObject({ cache: resourceName.describe("Name of another ContentCache in the spec to chain through (its externalURL is used).") }),
    ],
    { error: "must be a URL or {cache: NAME}" },
  )
  .describe("An upstream: a URL, or {cache: NAME} to chain through another cache.");

export const contentCacheSpecSchema = z
  .strictObject({
    dtr: resourceName.optional().describe("Name of the DTR document this cache serves; may be omitted when the spec has exactly one."),
    node: nodeSelectorSchema,
    nodeLabel: z
      .string()
      .regex(/^[A-Za-z0-9._-]+=[^=\s]+$/, "must be key=value")
      .default("dtr.cache=true")
      .describe("Label key=value that pins the cache to its node (set by the controller when node.hostname is used)."),
    replicas: z.number().int().min(1).max(16).default(1).describe("Number of cache tasks; more than one needs a label on several nodes and shared storage."),
    image: z.string().min(1).default("dtrcache/cache-server:0.1.0").describe("Cache image; its entrypoint must accept `/start.sh /config.yml`."),
    port: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .default(443)
      .describe("Port the cache listens on and publishes. 5001 needs `debugPort` set: without it the cache's debug listener takes 5001."),
    debugPort: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .optional()
      .describe(
        "Port of the cache's debug listener (/metrics, /healthz): rendered as http.debug.addr 0.0.0.0:PORT and published like `port` (same publishMode). Unset: the listener stays on the container's loopback (127.0.0.1:5001), unpublished. Plain HTTP; keep it off public networks.",
      ),
    publishMode: z.enum(["host", "ingress"]).default("host").describe("Swarm publish mode: host (bound on the cache's node) or ingress (routing mesh)."),
    externalURL: originUrl.describe("The URL clients and DTR use to reach this cache; registered with DTR as `host`."),
    tls: tlsSchema.default({ generate: true }),
    storage: storageSchema.default({ path: IMAGE_STORAGE_PATH }),
    blobTTL: durationString
      // The cache's own rule for blobttl (@dtrcache/config-yml): what validates here, it accepts.
      .refine((value) => checkBlobTtl(value).ok, BLOB_TTL_MINIMUM)
      .prefault("24h")
      .describe("How long a blob is kept after its last access (the runbook's blobttl)."),
    upstreams: z.array(upstreamSchema).default([]).describe("Next hops, used round-robin. Empty means the DTR itself."),
    extraCAFiles: z
      .array(pemSource)
      .default([])
      .describe(
        "Further PEM CAs the cache trusts for its upstreams: files or {config: NAME} (combined into one bundle, so they must be readable; a {secret: NAME} here is refused unless it is the only CA).",
      ),
    users: z.array(z.string().min(1)).default([]).describe("DTR users whose Content Cache setting points at this cache."),
    logLevel: z.enum(["error", "warn", "info", "debug"]).default("info").describe("The cache's log.level."),
  })
  .refine((s) => s.debugPort === undefined || s.debugPort !== s.port, {
    message: "must differ from port (the registry port never serves /metrics)",
    path: ["debugPort"],
  })
  // Unset, the cache's debug listener takes 127.0.0.1:5001, which the registry port on all
  // interfaces would collide with at start: the cache's own rule (@dtrcache/config-yml).
  .refine((s) => s.debugPort !== undefined || checkListeners({ host: "0.0.0.0", port: s.port }, undefined).ok, {
    message: "is the cache's own debug listener port while debugPort is unset; set debugPort to another port",
    path: ["port"],
  })
  .describe("One content cache: where it runs, how it is reached, and whom it serves.");

export const contentCacheDocumentSchema = z
  .strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(KIND_CONTENT_CACHE),
    metadata: metadataSchema,
    spec: contentCacheSpecSchema,
  })
  .describe("A DTR content cache deployed on a Swarm node.");

export const documentSchema = z.discriminatedUnion("kind", [dtrDocumentSchema, contentCacheDocumentSchema]);

export type SecretRef = z.infer<typeof secretRef>;
export type PemSource = z.infer<typeof pemSource>;
export type SwarmObjectRef = z.infer<typeof swarmSecretRef> | z.infer<typeof swarmConfigRef>;
export type DtrSpec = z.infer<typeof dtrSpecSchema>;
export type DtrDocument = z.infer<typeof dtrDocumentSchema>;
export type NodeSelector = z.infer<typeof nodeSelectorSchema>;
export type TlsSpec = z.infer<typeof tlsSchema>;
export type StorageSpec = z.infer<typeof storageSchema>;
export type Upstream = z.infer<typeof upstreamSchema>;
export type ContentCacheSpec = z.infer<typeof contentCacheSpecSchema>;
export type ContentCacheDocument = z.infer<typeof contentCacheDocumentSchema>;
export type CacheSpecDocument = z.infer<typeof documentSchema>;
