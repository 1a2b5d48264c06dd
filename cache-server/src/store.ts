// Content-addressed store on the local file system.
//
//   <root>/blobs/sha256/ab/<hex>              blob bytes (visible only after a verified rename)
//   <root>/manifests/sha256/ab/<hex>          manifest bytes, untouched
//   <root>/manifests/sha256/ab/<hex>.type     its Content-Type (written before the bytes)
//   <root>/tags/<repository>/<tag>            JSON {digest, mediaType} (temp + rename)
//   <root>/tmp/                               fills in progress; emptied at start
//
// The last-access time of every blob is kept in memory (for TTL and LRU) and persisted cheaply
// as the file's mtime, throttled, so a restart rebuilds both the index and the access order from
// a directory walk.
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, readdir, rename, rm, stat, unlink, utimes, writeFile, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { Clock } from "./clock.js";
import { digestHex, digestOf, isValidDigest, isValidName, isValidTag } from "./names.js";

export interface StoredBlob {
  readonly digest: string;
  readonly size: number;
  lastAccess: number;
  /** mtime last written to disk; persisted again only after PERSIST_EVERY_MS. */
  persistedAccess: number;
  /** Open readers; a blob with readers is never deleted. */
  readers: number;
}

export interface TagEntry {
  readonly digest: string;
  readonly mediaType: string;
}

const PERSIST_EVERY_MS = 60_000;
/** Open read handles kept for hot blobs: open+close were ~15% of CPU when serving 1 MiB blobs. */
const MAX_OPEN_HANDLES = 128;

interface SharedHandle {
  readonly fh: FileHandle;
  refs: number;
  dropped: boolean;
}

/** Manifests are small and hot (every pull asks for them): a bounded in-memory copy. */
const MANIFEST_MEMORY_BYTES = 8 * 1024 * 1024;

export class BlobStore {
  readonly root: string;
  readonly tmpDir: string;
  private readonly blobs = new Map<string, StoredBlob>();
  private readonly tags = new Map<string, TagEntry>();
  private bytes = 0;
  private readonly handles = new Map<string, SharedHandle>();
  private readonly manifestMemory = new Map<string, { bytes: Buffer; mediaType: string }>();
  private manifestMemoryBytes = 0;

  constructor(root: string, private readonly clock: Clock) {
    this.root = root;
    this.tmpDir = join(root, "tmp");
  }

  blobPath(digest: string): string {
    const hex = digestHex(digest);
    return join(this.root, "blobs", "sha256", hex.slice(0, 2), hex);
  }
  manifestPath(digest: string): string {
    const hex = digestHex(digest);
    return join(this.root, "manifests", "sha256", hex.slice(0, 2), hex);
  }
  private tagPath(name: string, tag: string): string {
    if (!isValidName(name) || !isValidTag(tag)) throw new Error("invalid repository or tag");
    return join(this.root, "tags", name, tag);
  }

  /** Empties the temp dir (fills interrupted by a crash are never trusted) and rebuilds the index. */
  async open(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(join(this.root, "blobs", "sha256"), { recursive: true });
    await mkdir(join(this.root, "manifests", "sha256"), { recursive: true });
    this.blobs.clear();
    this.bytes = 0;
    for (const prefix of await readdir(join(this.root, "blobs", "sha256"))) {
      const dir = join(this.root, "blobs", "sha256", prefix);
      for (const hex of await readdir(dir).catch(() => [] as string[])) {
        const digest = `sha256:${hex}`;
        if (!isValidDigest(digest) || hex.slice(0, 2) !== prefix) continue;
        const st = await stat(join(dir, hex)).catch(() => undefined);
        if (!st?.isFile()) continue;
        this.blobs.set(digest, { digest, size: st.size, lastAccess: st.mtimeMs, persistedAccess: st.mtimeMs, readers: 0 });
        this.bytes += st.size;
      }
    }
    this.tags.clear();
    await this.loadTags(join(this.root, "tags"), []);
  }

  private async loadTags(dir: string, parts: string[]): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (e.isDirectory()) await this.loadTags(join(dir, e.name), [...parts, e.name]);
      else if (e.isFile() && parts.length > 0 && isValidTag(e.name)) {
        const name = parts.join("/");
        if (!isValidName(name)) continue;
        try {
          const parsed = JSON.parse(await readFile(join(dir, e.name), "utf8")) as Partial<TagEntry>;
          if (typeof parsed.digest === "string" && isValidDigest(parsed.digest) && typeof parsed.mediaType === "string") {
            this.tags.set(`${name}:${e.name}`, { digest: parsed.digest, mediaType: parsed.mediaType });
          }
        } catch {
          // A torn or foreign file: the tag is simply revalidated upstream on next use.
        }
      }
    }
  }

  get totalBytes(): number {
    return this.bytes;
  }
  get blobCount(): number {
    return this.blobs.size;
  }

  getBlob(digest: string): StoredBlob | undefined {
    return this.blobs.get(digest);
  }

  /** Records an access (TTL and LRU both count from the last one). */
  touch(blob: StoredBlob): void {
    const now = this.clock.now();
    blob.lastAccess = now;
    if (now - blob.persistedAccess >= PERSIST_EVERY_MS) {
      blob.persistedAccess = now;
      const when = new Date(now);
      utimes(this.blobPath(blob.digest), when, when).catch(() => undefined);
    }
  }

  /** A temp file path for a new fill. */
  tempPath(): string {
    return join(this.tmpDir, `${randomBytes(12).toString("hex")}.part`);
  }

  /** Makes a verified temp file visible under its digest. */
  async commitBlob(tempPath: string, digest: string, size: number): Promise<StoredBlob> {
    const final = this.blobPath(digest);
    await mkdir(join(final, ".."), { recursive: true });
    const now = this.clock.now();
    const when = new Date(now);
    await utimes(tempPath, when, when);
    await rename(tempPath, final);
    const existing = this.blobs.get(digest);
    if (existing) return existing;
    const blob: StoredBlob = { digest, size, lastAccess: now, persistedAccess: now, readers: 0 };
    this.blobs.set(digest, blob);
    this.bytes += size;
    return blob;
  }

  /**
   * A read handle for a committed blob, shared between concurrent readers (positioned reads
   * only) and kept open for the next request. Call release() when done.
   */
  async openBlob(digest: string): Promise<{ fh: FileHandle; release: () => void }> {
    let h = this.handles.get(digest);
    if (!h) {
      const fh = await open(this.blobPath(digest), "r");
      h = this.handles.get(digest);
      if (h) await fh.close();
      else {
        h = { fh, refs: 0, dropped: false };
        this.handles.set(digest, h);
        this.trimHandles();
      }
    } else {
      // Map order doubles as LRU order.
      this.handles.delete(digest);
      this.handles.set(digest, h);
    }
    const shared = h;
    shared.refs++;
    let released = false;
    return {
      fh: shared.fh,
      release: () => {
        if (released) return;
        released = true;
        shared.refs--;
        if (shared.refs === 0 && shared.dropped) shared.fh.close().catch(() => undefined);
      },
    };
  }

  private dropHandle(digest: string): void {
    const h = this.handles.get(digest);
    if (!h) return;
    this.handles.delete(digest);
    h.dropped = true;
    if (h.refs === 0) h.fh.close().catch(() => undefined);
  }

  private trimHandles(): void {
    for (const digest of this.handles.keys()) {
      if (this.handles.size <= MAX_OPEN_HANDLES) break;
      this.dropHandle(digest);
    }
  }

  /** Closes every kept handle (shutdown). */
  closeHandles(): void {
    for (const digest of [...this.handles.keys()]) this.dropHandle(digest);
  }

  /** Deletes a blob unless someone is reading it; returns whether it was removed. */
  async deleteBlob(digest: string): Promise<boolean> {
    const blob = this.blobs.get(digest);
    if (!blob || blob.readers > 0) return false;
    this.blobs.delete(digest);
    this.bytes -= blob.size;
    this.dropHandle(digest);
    await unlink(this.blobPath(digest)).catch(() => undefined);
    return true;
  }

  /** Snapshot for the sweeper, least recently used first. */
  blobsByAge(): StoredBlob[] {
    return [...this.blobs.values()].sort((a, b) => a.lastAccess - b.lastAccess);
  }

  // --- manifests ---

  private remember(digest: string, m: { bytes: Buffer; mediaType: string }): void {
    if (m.bytes.length > MANIFEST_MEMORY_BYTES / 8 || this.manifestMemory.has(digest)) return;
    this.manifestMemory.set(digest, m);
    this.manifestMemoryBytes += m.bytes.length;
    // Map order is insertion order; hits re-insert, so the first key is the least recently used.
    for (const [k, v] of this.manifestMemory) {
      if (this.manifestMemoryBytes <= MANIFEST_MEMORY_BYTES) break;
      this.manifestMemory.delete(k);
      this.manifestMemoryBytes -= v.bytes.length;
    }
  }

  async getManifest(digest: string): Promise<{ bytes: Buffer; mediaType: string } | undefined> {
    const hot = this.manifestMemory.get(digest);
    if (hot) {
      this.manifestMemory.delete(digest);
      this.manifestMemory.set(digest, hot);
      return hot;
    }
    const m = await this.readManifest(digest);
    if (m) this.remember(digest, m);
    return m;
  }

  private async readManifest(digest: string): Promise<{ bytes: Buffer; mediaType: string } | undefined> {
    const path = this.manifestPath(digest);
    try {
      const [bytes, mediaType] = await Promise.all([readFile(path), readFile(`${path}.type`, "utf8")]);
      // Manifests are small and read whole, so verifying on every read is cheap insurance
      // against a torn write surviving a crash.
      if (digestOf(bytes) !== digest) return undefined;
      return { bytes, mediaType };
    } catch {
      return undefined;
    }
  }

  async putManifest(digest: string, bytes: Buffer, mediaType: string): Promise<void> {
    const path = this.manifestPath(digest);
    await mkdir(join(path, ".."), { recursive: true });
    const tmp = this.tempPath();
    await writeFile(`${tmp}.type`, mediaType);
    await rename(`${tmp}.type`, `${path}.type`);
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(bytes);
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    this.remember(digest, { bytes, mediaType });
  }

  getTag(name: string, tag: string): TagEntry | undefined {
    return this.tags.get(`${name}:${tag}`);
  }

  async putTag(name: string, tag: string, entry: TagEntry): Promise<void> {
    const key = `${name}:${tag}`;
    const prev = this.tags.get(key);
    this.tags.set(key, entry);
    if (prev && prev.digest === entry.digest && prev.mediaType === entry.mediaType) return;
    const path = this.tagPath(name, tag);
    await mkdir(join(path, ".."), { recursive: true });
    const tmp = this.tempPath();
    await writeFile(tmp, JSON.stringify(entry));
    await rename(tmp, path);
  }
}
