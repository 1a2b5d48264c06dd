// Tiny, valid images built in memory: an uncompressed tar layer with given files, an OCI config
// whose diff_ids match, and an OCI image layout on disk that skopeo can push. Also direct pushes
// of raw blobs and manifests through the registry API (monolithic upload) for tests that only
// need bytes in a repository.
import { digestOf } from "@dtrcache/cache-server";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** `sha256:<hex>` of bytes: the cache-server's own digest function. */
export const sha256 = digestOf;

function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000644\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  h.write(`${(0).toString(8).padStart(11, "0")}\0`, 136);
  h.write("        ", 148);
  h.write("0", 156);
  h.write("ustar\0", 257);
  h.write("00", 263);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

/** An uncompressed tar with regular files at the root. */
export function tarOf(files: readonly { name: string; content: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    parts.push(tarHeader(f.name, f.content.length), f.content, Buffer.alloc((512 - (f.content.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export interface BuiltImage {
  readonly config: Buffer;
  readonly layers: readonly Buffer[];
  readonly manifest: Buffer;
  readonly manifestDigest: string;
}

export function buildImage(layers: readonly Buffer[]): BuiltImage {
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/nothing"] },
      rootfs: { type: "layers", diff_ids: layers.map(sha256) },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(l), size: l.length })),
    }),
  );
  return { config, layers, manifest, manifestDigest: sha256(manifest) };
}

/** Writes an OCI image layout (for `skopeo copy oci:DIR:TAG ...`). */
export async function writeOciLayout(dir: string, tag: string, image: BuiltImage): Promise<void> {
  const blobs = join(dir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  for (const b of [image.config, image.manifest, ...image.layers]) await writeFile(join(blobs, sha256(b).slice(7)), b);
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: image.manifestDigest,
          size: image.manifest.length,
          annotations: { "org.opencontainers.image.ref.name": tag },
        },
      ],
    }),
  );
}

/** Pushes one blob with a monolithic upload (POST then PUT ?digest=). */
export async function pushBlob(registryUrl: string, repo: string, bytes: Buffer, headers: Record<string, string> = {}): Promise<string> {
  const digest = sha256(bytes);
  const start = await fetch(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: "POST", headers });
  await start.arrayBuffer();
  const location = start.headers.get("location");
  if (start.status !== 202 || !location) throw new Error(`upload start failed: ${start.status}`);
  const target = new URL(location, registryUrl);
  target.searchParams.set("digest", digest);
  const put = await fetch(target, { method: "PUT", body: bytes, headers: { ...headers, "content-type": "application/octet-stream" } });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`blob upload failed: ${put.status}`);
  return digest;
}

export async function pushImage(registryUrl: string, repo: string, tag: string, image: BuiltImage, headers: Record<string, string> = {}): Promise<void> {
  for (const b of [image.config, ...image.layers]) await pushBlob(registryUrl, repo, b, headers);
  await putManifest(registryUrl, repo, tag, image.manifest, headers);
}

export async function putManifest(registryUrl: string, repo: string, tag: string, manifest: Buffer, headers: Record<string, string> = {}): Promise<void> {
  const r = await fetch(`${registryUrl}/v2/${repo}/manifests/${tag}`, {
    method: "PUT",
    body: manifest,
    headers: { ...headers, "content-type": "application/vnd.oci.image.manifest.v1+json" },
  });
  await r.arrayBuffer();
  if (r.status !== 201) throw new Error(`manifest push failed: ${r.status}`);
}
