// Content-addressed store on the local file system.
//
//   <root>/blobs/sha256/ab/<hex>              blob bytes (visible only after a verified rename)
//   <root>/manifests/sha256/ab/<hex>          manifest bytes, untouched
//   <root>/manifests/sha256/ab/<hex>.type     its Content-Type (written before the bytes)
//   <root>/tags/<repository>/<tag>            JSON {digest, mediaType} (temp + rename)
//   <root>/tmp/                               fills in progress (orphans removed by resync)
//   <root>/claims/<hex>                       cross-process fill claims (claim.ts)
//   <root>/sessions/, doubted                 processes sharing the root (sessions.ts)
//   <root>/clean-shutdown                     written by the last graceful close, removed at start
//
// The last-access time of every blob is kept in memory (for TTL and LRU) and persisted cheaply
// as the file's mtime, throttled, so a restart rebuilds both the index and the access order from
// a directory walk.
//
// Durability: every commit is fsync(file) → rename → fsync(dir) (durable.ts). A start that finds
// no clean-shutdown marker (host crash, SIGKILL, or a store written by a version without fsync)
// trusts names but not contents: every blob is "unverified" until it has been hashed against its
// digest (verifyBlob: on demand before its first serve, and by a background pass); a mismatch is
// deleted. A clean start verifies nothing, so the warm path costs the same as before.
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, readdir, stat, unlink, utimes, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { ByteLru } from "./byte-lru.js";
import { ClaimDirectory } from "./claim.js";
import type { Clock } from "./clock.js";
import { Sessions } from "./sessions.js";
import { renameDurable, syncDir, syncFile, writeFileDurable } from "./durable.js";
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
/**
 * Small blobs (image configs, small layers) are kept in memory once served: a hit then costs
 * one write of a buffer instead of an fstat and positioned reads through the thread pool and a
 * copy out of the page cache per request (docs/cache-server.md, "Memory tier").
 */
export const HOT_BLOB_MAX_BYTES = 1024 * 1024;
const HOT_BLOB_MEMORY_BYTES = 16 * 1024 * 1024;

const CLEAN_MARKER = "clean-shutdown";
/** A temp file nobody claims and nobody wrote for this long belongs to a dead process. */
const ORPHAN_TEMP_MS = 60 * 60_000;

export type VerifyResult = "ok" | "mismatch" | "unreadable";

export interface StoreEvents {
  /** A blob doubted after an unclean stop was hashed; anything but "ok" has been deleted. */
  onVerified?(digest: string, result: VerifyResult, size: number): void;
}

export class BlobStore {
  readonly root: string;
  readonly tmpDir: string;
  private readonly blobs = new Map<string, StoredBlob>();
  private readonly tags = new Map<string, TagEntry>();
  private bytes = 0;
  private readonly handles = new Map<string, SharedHandle>();
  private readonly manifestMemory = new ByteLru<{ bytes: Buffer; mediaType: string }>(MANIFEST_MEMORY_BYTES, MANIFEST_MEMORY_BYTES / 8, (m) => m.bytes.length);
  private readonly blobMemory = new ByteLru<Buffer>(HOT_BLOB_MEMORY_BYTES, HOT_BLOB_MAX_BYTES, (b) => b.length);
  /** Blobs whose bytes are not trusted yet (after an unclean stop). */
  private readonly unverified = new Set<string>();
  private readonly verifying = new Map<string, Promise<boolean>>();
  private cleanStart = false;
  /** Cross-process fill claims (claim.ts). */
  readonly claims: ClaimDirectory;
  /** This process's registration among the processes sharing the root (sessions.ts). */
  readonly sessions: Sessions;

  constructor(
    root: string,
    private readonly clock: Clock,
    private readonly events: StoreEvents = {},
  ) {
    this.root = root;
    this.tmpDir = join(root, "tmp");
    this.claims = new ClaimDirectory(root);
    this.sessions = new Sessions(root);
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

  /**
   * Rebuilds the index. Several processes may share the root (workers, replicas on shared
   * storage), so nothing another live process may be using is removed here: tmp/ is left to the
   * sweeper (orphans only, see resync) and the clean-shutdown marker decides together with the
   * other processes' sessions whether blobs are doubted (sessions.ts).
   */
  async open(): Promise<void> {
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(join(this.root, "blobs", "sha256"), { recursive: true });
    await mkdir(join(this.root, "manifests", "sha256"), { recursive: true });
    await this.claims.init();
    // A fill left by a crashed process (its claim stale, e.g. its pid gone on this host) is not
    // continued by a restart: claim and temp file go, as tmp/ was emptied before. Live processes'
    // fills and temp files are left alone.
    await this.claims.removeAbandoned(0);
    this.cleanStart = await this.sessions.register(() => this.consumeCleanMarker());
    this.blobs.clear();
    this.unverified.clear();
    this.bytes = 0;
    for (const { digest, size, mtimeMs } of await this.walkBlobs()) {
      this.blobs.set(digest, { digest, size, lastAccess: mtimeMs, persistedAccess: mtimeMs, readers: 0 });
      this.bytes += size;
      if (!this.cleanStart) this.unverified.add(digest);
    }
    // Nothing to doubt (an empty store): later starters need not either.
    if (!this.cleanStart && this.unverified.size === 0) await this.sessions.doubtResolved();
    this.tags.clear();
    await this.loadTags(join(this.root, "tags"), []);
  }

  private async walkBlobs(): Promise<{ digest: string; size: number; mtimeMs: number }[]> {
    const out: { digest: string; size: number; mtimeMs: number }[] = [];
    for (const prefix of await readdir(join(this.root, "blobs", "sha256")).catch(() => [] as string[])) {
      const dir = join(this.root, "blobs", "sha256", prefix);
      for (const hex of await readdir(dir).catch(() => [] as string[])) {
        const digest = `sha256:${hex}`;
        if (!isValidDigest(digest) || hex.slice(0, 2) !== prefix) continue;
        const st = await stat(join(dir, hex)).catch(() => undefined);
        if (!st?.isFile()) continue;
        out.push({ digest, size: st.size, mtimeMs: st.mtimeMs });
      }
    }
    return out;
  }

  /**
   * Re-syncs the index with the directory (the sweeper's pass): blobs committed by other
   * processes are added (a commit is a verified rename, so they are trusted), blobs deleted by
   * them are forgotten, access times move forward to the files' mtimes (other processes' reads),
   * and usage becomes the directory's. Also removes temp files no claim writes any more (a
   * crashed process's fill) and leftover takeover guards.
   */
  async resync(): Promise<void> {
    const seen = new Set<string>();
    for (const { digest, size, mtimeMs } of await this.walkBlobs()) {
      seen.add(digest);
      const entry = this.blobs.get(digest);
      if (!entry) this.adopt(digest, size, mtimeMs);
      else if (mtimeMs > entry.lastAccess) entry.lastAccess = mtimeMs;
    }
    for (const [digest, entry] of this.blobs) if (!seen.has(digest) && entry.readers === 0) this.forget(digest, entry);
    await this.claims.removeStaleGuards();
    await this.claims.removeAbandoned(ORPHAN_TEMP_MS);
    const live = await this.claims.liveTemps();
    for (const name of await readdir(this.tmpDir).catch(() => [] as string[])) {
      const path = join(this.tmpDir, name);
      if (live.has(path)) continue;
      const st = await stat(path).catch(() => undefined);
      // Manifest and tag temps live for milliseconds; an hour-old unclaimed file is an orphan.
      if (st && this.clock.now() - st.mtimeMs > ORPHAN_TEMP_MS) await unlink(path).catch(() => undefined);
    }
  }

  /** Indexes a blob another process committed (or this process found on disk). */
  adopt(digest: string, size: number, mtimeMs = this.clock.now()): StoredBlob {
    const existing = this.blobs.get(digest);
    if (existing) return existing;
    const blob: StoredBlob = { digest, size, lastAccess: mtimeMs, persistedAccess: mtimeMs, readers: 0 };
    this.blobs.set(digest, blob);
    this.bytes += size;
    return blob;
  }

  /** The index entry, or the file another process committed since the last resync. */
  async findBlob(digest: string): Promise<StoredBlob | undefined> {
    const known = this.blobs.get(digest);
    if (known) return known;
    const st = await stat(this.blobPath(digest)).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    return this.adopt(digest, st.size, st.mtimeMs);
  }

  /**
   * Removes the marker durably before anything else is written: should this run end in a crash,
   * the next start must not find a marker left over from the previous clean stop.
   */
  private async consumeCleanMarker(): Promise<boolean> {
    const marker = join(this.root, CLEAN_MARKER);
    try {
      await unlink(marker);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
    await syncDir(this.root);
    return true;
  }

  /** Whether the last stop was clean (the marker was found at open). */
  get startedClean(): boolean {
    return this.cleanStart;
  }

  /**
   * Writes the clean-shutdown marker (graceful close). Every committed blob is already durable;
   * the marker says no blob needs hashing at the next start. Not written while some blobs are
   * still unverified: they would be trusted unhashed next time. Returns whether it was written.
   */
  async markClean(): Promise<boolean> {
    // Only the last process to leave writes it: while others run, the store is not stopped.
    const last = await this.sessions.unregister();
    if (this.unverified.size > 0 || !last) return false;
    await writeFileDurable(join(this.tmpDir, `${CLEAN_MARKER}.part`), join(this.root, CLEAN_MARKER), `${new Date(this.clock.now()).toISOString()}\n`);
    return true;
  }

  get unverifiedCount(): number {
    return this.unverified.size;
  }

  isUnverified(digest: string): boolean {
    return this.unverified.has(digest);
  }

  /**
   * Hashes an unverified blob against its digest; a mismatch or an unreadable file is deleted.
   * Concurrent calls share one pass. Resolves true when the blob is (now) trusted or was never
   * doubted, false when it is gone.
   */
  verifyBlob(digest: string): Promise<boolean> {
    if (!this.unverified.has(digest)) return Promise.resolve(this.blobs.has(digest));
    let running = this.verifying.get(digest);
    if (!running) {
      running = this.runVerify(digest).finally(() => this.verifying.delete(digest));
      this.verifying.set(digest, running);
    }
    return running;
  }

  private async runVerify(digest: string): Promise<boolean> {
    const entry = this.blobs.get(digest);
    if (!entry) {
      this.unverified.delete(digest);
      return false;
    }
    // Pinned while hashing, so the sweeper does not delete the file under us.
    entry.readers++;
    let result: VerifyResult;
    try {
      result = (await hashFile(this.blobPath(digest))) === digest ? "ok" : "mismatch";
    } catch {
      result = "unreadable";
    } finally {
      entry.readers--;
    }
    // A fill may have replaced the entry meanwhile (a fresh, verified commit): that one stands.
    if (this.blobs.get(digest) !== entry) return this.blobs.has(digest);
    this.unverified.delete(digest);
    this.events.onVerified?.(digest, result, entry.size);
    if (result === "ok") return true;
    this.forget(digest, entry);
    await unlink(this.blobPath(digest)).catch(() => undefined);
    return false;
  }

  /**
   * The background pass after an unclean stop: verifies every doubted blob, most recently used
   * first (the likeliest to be asked for next), one at a time so serving keeps its share.
   */
  async verifyAll(signal: AbortSignal): Promise<{ ok: number; removed: number }> {
    let ok = 0;
    let removed = 0;
    const order = [...this.unverified].sort((a, b) => (this.blobs.get(b)?.lastAccess ?? 0) - (this.blobs.get(a)?.lastAccess ?? 0));
    for (const digest of order) {
      if (signal.aborted) break;
      if (!this.unverified.has(digest)) continue;
      if (await this.verifyBlob(digest)) ok++;
      else removed++;
    }
    // Every blob hashed: processes starting from now on need not doubt the store.
    if (this.unverified.size === 0) await this.sessions.doubtResolved();
    return { ok, removed };
  }

  /** Drops an entry whose file is gone (deleted by another process). */
  forgetMissing(digest: string): void {
    const entry = this.blobs.get(digest);
    if (entry) this.forget(digest, entry);
  }

  private forget(digest: string, entry: StoredBlob): void {
    this.blobs.delete(digest);
    this.unverified.delete(digest);
    this.bytes -= entry.size;
    this.dropHandle(digest);
    this.blobMemory.delete(digest);
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

  /** Makes a verified temp file visible under its digest, durably (bytes, then name). */
  async commitBlob(tempPath: string, digest: string, size: number): Promise<StoredBlob> {
    const final = this.blobPath(digest);
    const now = this.clock.now();
    const when = new Date(now);
    await utimes(tempPath, when, when);
    await syncFile(tempPath);
    await renameDurable(tempPath, final);
    const existing = this.blobs.get(digest);
    // An entry still doubted was just overwritten by verified bytes: the new entry replaces it.
    if (existing && !this.unverified.has(digest)) return existing;
    if (existing) this.forget(digest, existing);
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
    // A kept handle may point at a file another process sharing the root has deleted since:
    // serving it would keep a blob alive that the store no longer has (and its space unfreed).
    if (h && (await h.fh.stat().catch(() => undefined))?.nlink === 0) {
      this.dropHandle(digest);
      h = undefined;
    }
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

  /** The in-memory copy of a small committed blob, if this process keeps one (the hit path). */
  hotBlob(digest: string): Buffer | undefined {
    return this.blobMemory.get(digest);
  }

  /**
   * Reads a small committed blob whole from its open handle and keeps the copy in memory;
   * undefined when the blob is too large to keep or the file is shorter than its index entry.
   * The bytes are the committed file's, verified when it was committed (or re-hashed before its
   * first answer after an unclean stop), so the copy is as trusted as the file.
   */
  async loadHotBlob(blob: StoredBlob, fh: FileHandle): Promise<Buffer | undefined> {
    if (!this.blobMemory.admits(blob.size)) return undefined;
    const bytes = Buffer.allocUnsafeSlow(blob.size);
    let filled = 0;
    while (filled < blob.size) {
      const { bytesRead } = await fh.read(bytes, filled, blob.size - filled, filled);
      if (bytesRead === 0) return undefined;
      filled += bytesRead;
    }
    // Forgotten meanwhile (deleted or replaced): serve this copy once, keep nothing.
    if (this.blobs.get(blob.digest) === blob) this.blobMemory.set(blob.digest, bytes);
    return bytes;
  }

  /** Closes every kept handle (shutdown). */
  closeHandles(): void {
    for (const digest of [...this.handles.keys()]) this.dropHandle(digest);
  }

  /** Deletes a blob unless someone is reading it; returns whether it was removed. */
  async deleteBlob(digest: string): Promise<boolean> {
    const blob = this.blobs.get(digest);
    if (!blob || blob.readers > 0) return false;
    // Another process may have read it meanwhile (its access lands in the mtime): re-checked
    // right before the unlink, so expiry and LRU count every process's reads. A read already in
    // progress elsewhere keeps its open descriptor, which survives the unlink.
    const st = await stat(this.blobPath(digest)).catch(() => undefined);
    if (st && st.mtimeMs > blob.persistedAccess + 1) {
      blob.lastAccess = Math.max(blob.lastAccess, st.mtimeMs);
      blob.persistedAccess = st.mtimeMs;
      return false;
    }
    if (blob.readers > 0) return false;
    this.forget(digest, blob);
    await unlink(this.blobPath(digest)).catch(() => undefined);
    return true;
  }

  /** Snapshot for the sweeper, least recently used first. */
  blobsByAge(): StoredBlob[] {
    return [...this.blobs.values()].sort((a, b) => a.lastAccess - b.lastAccess);
  }

  // --- manifests ---

  private remember(digest: string, m: { bytes: Buffer; mediaType: string }): void {
    this.manifestMemory.set(digest, m);
  }

  async getManifest(digest: string): Promise<{ bytes: Buffer; mediaType: string } | undefined> {
    const hot = this.hotManifest(digest);
    if (hot) return hot;
    const m = await this.readManifest(digest);
    if (m) this.remember(digest, m);
    return m;
  }

  /** The in-memory copy of a manifest, if it has one, without touching the disk (the hit path). */
  hotManifest(digest: string): { bytes: Buffer; mediaType: string } | undefined {
    return this.manifestMemory.get(digest);
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
    const tmp = this.tempPath();
    // The type first, so a manifest never exists without its Content-Type; both durable (a
    // manifest is also re-hashed when read, so a torn one would only be treated as absent).
    await writeFileDurable(`${tmp}.type`, `${path}.type`, mediaType);
    await writeFileDurable(tmp, path, bytes);
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
    await writeFileDurable(this.tempPath(), this.tagPath(name, tag), JSON.stringify(entry));
  }
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) hash.update(chunk);
  return `sha256:${hash.digest("hex")}`;
}
