// The digests a manifest makes readable under the repository it was served from. A registry only
// accepts a manifest whose config, layers and child manifests are linked into that repository, so
// an upstream that served the manifest to a credential under a name would also serve those objects
// to it under that name: the cache may remember them as allowed (auth.ts) and save one upstream
// round trip per layer. Layers that carry `urls` (non-distributable, "foreign" layers) are not
// stored by the registry at all and are never taken as allowed.
import { isValidDigest } from "./names.js";

interface Descriptor {
  digest?: unknown;
  urls?: unknown;
}

export function manifestReferences(bytes: Buffer): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString("utf8"));
  } catch {
    return [];
  }
  if (typeof doc !== "object" || doc === null) return [];
  const m = doc as { config?: Descriptor; layers?: unknown; manifests?: unknown; fsLayers?: unknown };
  const out = new Set<string>();
  const add = (d: unknown): void => {
    if (typeof d !== "object" || d === null) return;
    const desc = d as Descriptor;
    if (desc.urls !== undefined) return;
    if (typeof desc.digest === "string" && isValidDigest(desc.digest)) out.add(desc.digest);
  };
  add(m.config);
  for (const list of [m.layers, m.manifests]) if (Array.isArray(list)) list.forEach(add);
  // Schema 1 names its layers `blobSum`.
  if (Array.isArray(m.fsLayers)) for (const l of m.fsLayers as { blobSum?: unknown }[]) add({ digest: l?.blobSum });
  return [...out];
}
