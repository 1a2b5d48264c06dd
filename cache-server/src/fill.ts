// Fill once, stream to all. The first miss for a digest opens ONE upstream fetch into a temp
// file; every concurrent requester tails that file as bytes arrive. sha256 and length are checked
// while streaming and the blob becomes visible (durable rename: fsync file, rename, fsync dir, see
// store.commitBlob) only when both match. Readers never receive the last byte before the commit,
// so a bad fill can only end in a cut-off connection, never a clean end, and a client that got
// the whole blob finds it stored on its next request. Readers detaching (client aborts) never
// cancel the fill.
//
// Disk full: when a temp write fails with ENOSPC, the fill keeps going in pass-through mode:
// bytes already on disk are read from the file, later bytes are queued in memory per attached
// reader (bounded: the upstream is paused while any queue is over QUEUE_LIMIT), nothing is kept.
import { createHash, type Hash } from "node:crypto";
import { open, stat, unlink, type FileHandle } from "node:fs/promises";
import type { Readable } from "node:stream";
import { OwnedClaim } from "./claim.js";
import type { BlobStore, StoredBlob } from "./store.js";
import { FillError } from "./errors.js";
import { upstreamBytesRead } from "./gc-pacing.js";
import { FillReader } from "./fill-reader.js";
import { digestHex } from "./names.js";

/** The fill pauses its upstream while any reader holds more pass-through bytes than this. */
const QUEUE_LIMIT = 8 * 1024 * 1024;

export interface FillStart {
  readonly ok: true;
  readonly size: number | undefined;
  readonly mediaType: string | undefined;
}
export interface FillRefused {
  readonly ok: false;
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

export interface FillSource {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Readable;
}

export interface FillEvents {
  onFetched?(bytes: number): void;
  onDone?(fill: Fill, blob: StoredBlob): void;
  onFailed?(fill: Fill, err: Error): void;
  onDiskFull?(fill: Fill, err: Error): void;
}

export class Fill {
  private readonly readers = new Set<FillReader>();
  private fillState: "starting" | "running" | "done" | "failed" = "starting";
  private failure: Error | undefined;
  /** Where the bytes are: the temp file, or the blob path once committed. */
  private where: string;
  /** Bytes received from upstream (and hashed). */
  private receivedBytes = 0;
  /** Bytes durably in the file at `path` (stops growing in pass-through mode). */
  private bytesInFile = 0;
  private isPassthrough: boolean;
  private expectedSize: number | undefined;
  private type: string | undefined;
  readonly ready: Promise<FillStart | FillRefused>;
  private resolveReady!: (v: FillStart | FillRefused) => void;
  private waiters: (() => void)[] = [];
  private readonly hash: Hash = createHash("sha256");
  /** Another process fetched (part of) it: the local requester was not authorized by its GET. */
  private wasFollowed = false;
  /** The store entry when a followed fill ended in the owner's commit. */
  private doneBlob: StoredBlob | undefined;

  constructor(
    readonly digest: string,
    tempPath: string,
    passthrough: boolean,
  ) {
    this.where = tempPath;
    this.isPassthrough = passthrough;
    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
  }

  get state(): "starting" | "running" | "done" | "failed" {
    return this.fillState;
  }
  /** Why the fill failed (state "failed"). */
  get error(): Error | undefined {
    return this.failure;
  }
  /** Where the bytes are: the temp file, or the blob path once committed. */
  get path(): string {
    return this.where;
  }
  /** Bytes received and hashed so far. */
  get received(): number {
    return this.receivedBytes;
  }
  /** Bytes in the file at `path`; stops growing in pass-through mode. */
  get fileBytes(): number {
    return this.bytesInFile;
  }
  /** Disk full: bytes go to readers' memory queues and nothing is kept. */
  get passthrough(): boolean {
    return this.isPassthrough;
  }
  /** The upstream's Content-Length, then the verified length. */
  get size(): number | undefined {
    return this.expectedSize;
  }
  /** Another process fetched it: the requester that started this fill was not authorized by its own GET. */
  get followed(): boolean {
    return this.wasFollowed;
  }
  get readerCount(): number {
    return this.readers.size;
  }

  /** Called by a detaching reader. */
  release(reader: FillReader): void {
    this.readers.delete(reader);
    this.notify();
  }

  attach(): FillReader {
    const r = new FillReader(this);
    this.readers.add(r);
    return r;
  }

  /** Bytes a reader may send now: everything once verified, all but the last byte before. */
  sendable(): number {
    if (this.fillState === "done") return this.receivedBytes;
    return Math.max(0, this.receivedBytes - 1);
  }

  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Runs the fill to completion; never throws (outcome is in `state`). Across processes sharing
   * the root, only the claim holder fetches (own); the others tail its temp file (follow) and
   * take over when its claim goes stale.
   */
  async run(source: () => Promise<FillSource>, store: BlobStore, events: FillEvents): Promise<void> {
    let claim: OwnedClaim | undefined;
    let resume = false;
    try {
      if (!this.isPassthrough) {
        const hex = digestHex(this.digest);
        for (;;) {
          claim = await store.claims.acquire(hex, this.where);
          if (claim) break;
          this.wasFollowed = true;
          const outcome = await this.follow(store);
          if (outcome === "done") {
            if (this.doneBlob) events.onDone?.(this, this.doneBlob);
            return;
          }
          if (outcome instanceof OwnedClaim) {
            claim = outcome;
            resume = true;
            break;
          }
        }
      }
      await this.own(source, store, events, claim, resume);
      await claim?.release();
      this.notify();
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      this.failure = e;
      this.fillState = "failed";
      this.resolveReady({ ok: false, status: 502, headers: {}, body: Buffer.alloc(0) });
      events.onFailed?.(this, e);
      this.notify();
      // A claim lost to a takeover means its temp file is someone else's now: leave it.
      const ours = claim ? !claim.lost : !this.wasFollowed;
      await claim?.release();
      if (ours) await unlink(this.where).catch(() => undefined);
    }
  }

  /**
   * Tails another process's fill: hashes what it writes (so the bytes this process sends are
   * verified by this process too), publishes size and type from its claim, and ends when the
   * owner's verified rename appears in blobs/. Returns a claim when this process took over a
   * stale one (the caller continues the same temp file), "retry" when the owner gave up before
   * any byte was read here.
   */
  private async follow(store: BlobStore): Promise<"done" | "retry" | OwnedClaim> {
    const hex = digestHex(this.digest);
    const blobPath = store.blobPath(this.digest);
    let fh: FileHandle | undefined;
    let ino = -1;
    const buf = Buffer.allocUnsafe(1024 * 1024);
    try {
      for (;;) {
        const claimState = await store.claims.read(hex);
        const info = claimState.kind === "none" ? undefined : claimState.info;
        if (info?.size !== undefined && this.fillState === "starting") this.started(info.size, info.mediaType);
        if (!fh && info && info.temp.startsWith(store.tmpDir)) {
          fh = await open(info.temp, "r").catch(() => undefined);
          if (fh) {
            ino = (await fh.stat()).ino;
            this.where = info.temp;
          }
        }
        let grew = false;
        if (fh) {
          for (;;) {
            const { bytesRead } = await fh.read(buf, 0, buf.length, this.receivedBytes);
            if (bytesRead === 0) break;
            this.hash.update(buf.subarray(0, bytesRead));
            this.receivedBytes += bytesRead;
            this.bytesInFile = this.receivedBytes;
            grew = true;
          }
          if (this.expectedSize !== undefined && this.receivedBytes > this.expectedSize)
            throw new FillError("FILL_SIZE_MISMATCH", `the file grew past its Content-Length ${this.expectedSize}`);
          if (grew) this.notify();
        }
        // The claim was read before this stat: an owner renames, then drops its claim, so "no
        // claim" followed by "no blob" means it gave up.
        const blob = await stat(blobPath).catch(() => undefined);
        if (blob) {
          if (blob.ino !== ino) {
            // Committed by someone else than the file we tail (a takeover elsewhere): the verified
            // blob has the same bytes, continue from it.
            await fh?.close();
            fh = await open(blobPath, "r");
            ino = blob.ino;
            this.where = blobPath;
            if (this.fillState === "starting") this.started(blob.size, undefined);
            continue;
          }
          if (this.receivedBytes < blob.size) continue;
          const actual = `sha256:${this.hash.digest("hex")}`;
          if (actual !== this.digest || this.receivedBytes !== blob.size) throw new FillError("FILL_DIGEST_MISMATCH", `the shared blob hashes to ${actual}`);
          if (this.fillState === "starting") this.started(blob.size, undefined);
          this.expectedSize = this.receivedBytes;
          this.where = blobPath;
          const stored = store.adopt(this.digest, this.receivedBytes);
          this.fillState = "done";
          this.notify();
          this.doneBlob = stored;
          return "done";
        }
        if (grew) continue;
        if (claimState.kind === "none") {
          if (this.receivedBytes > 0) throw new FillError("FILL_OWNER_FAILED", "the process filling this blob gave up");
          return "retry";
        }
        if (claimState.kind === "stale") {
          const temp = info?.temp.startsWith(store.tmpDir) ? info.temp : this.where;
          const taken = await store.claims.takeOver(hex, claimState.key, temp);
          if (taken) {
            this.where = taken.temp;
            return taken;
          }
        }
        await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
      }
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }

  private started(size: number | undefined, mediaType: string | undefined): void {
    this.expectedSize = size;
    this.type = mediaType;
    this.fillState = "running";
    this.resolveReady({ ok: true, size, mediaType });
  }

  /**
   * Fetches from the upstream into `path`. With `resume`, the file is a stale owner's: what this
   * process already hashed from it stays (truncated there) and the upstream's first bytes up to
   * that point are skipped, so the file is exactly the hashed bytes.
   */
  private async own(source: () => Promise<FillSource>, store: BlobStore, events: FillEvents, claim: OwnedClaim | undefined, resume: boolean): Promise<void> {
    let fh: FileHandle | undefined;
    const skip = resume ? this.receivedBytes : 0;
    try {
      if (!this.isPassthrough) {
        try {
          if (resume) {
            fh = await open(this.where, "r+").catch((err: NodeJS.ErrnoException) => {
              if (err.code === "ENOENT" && skip === 0) return open(this.where, "wx");
              throw err;
            });
            await fh.truncate(skip);
            this.bytesInFile = skip;
          } else {
            fh = await open(this.where, "wx");
          }
        } catch (err) {
          if (!isDiskFull(err)) throw err;
          this.isPassthrough = true;
          await claim?.release();
          events.onDiskFull?.(this, err as Error);
        }
      }
      let src: FillSource;
      try {
        src = await source();
      } catch (err) {
        throw new FillError("FILL_UPSTREAM_FAILED", "upstream request failed", { cause: err });
      }
      if (src.status !== 200) {
        const body = await readLimited(src.body, 64 * 1024);
        this.resolveReady({ ok: false, status: src.status, headers: src.headers, body });
        throw new FillError("FILL_UPSTREAM_STATUS", `upstream answered ${src.status}`);
      }
      const cl = first(src.headers["content-length"]);
      const size = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
      if (this.fillState === "starting") this.started(size, first(src.headers["content-type"]));
      else this.expectedSize = size;
      if (claim && !this.isPassthrough) await claim.publish(this.expectedSize, this.type);

      let seen = 0;
      for await (const whole of src.body as AsyncIterable<Buffer>) {
        // After a takeover the bytes up to `skip` are already hashed and in the file.
        const chunk = seen >= skip ? whole : whole.subarray(Math.min(whole.length, skip - seen));
        seen += whole.length;
        if (chunk.length === 0) continue;
        this.hash.update(chunk);
        if (fh && !this.isPassthrough) {
          // A process frozen past the claim's staleness was replaced: never write into the
          // file its successor continues.
          if (claim && !(await claim.checkedRecently())) {
            src.body.on("error", () => undefined).destroy();
            throw new FillError("FILL_CLAIM_LOST", "another process took this fill over");
          }
          // Positioned writes may be short when the disk fills up: loop, and count only what
          // really landed in the file.
          let off = 0;
          try {
            while (off < chunk.length) {
              const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, this.bytesInFile);
              if (bytesWritten === 0) throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
              off += bytesWritten;
              this.bytesInFile += bytesWritten;
            }
          } catch (err) {
            if (!isDiskFull(err)) throw err;
            this.isPassthrough = true;
            await claim?.release();
            events.onDiskFull?.(this, err as Error);
          }
        }
        if (this.isPassthrough) {
          const from = Math.max(0, this.bytesInFile - this.receivedBytes);
          const part = chunk.subarray(from);
          for (const r of this.readers) r.offer(part, this.receivedBytes + from);
        }
        this.receivedBytes += chunk.length;
        events.onFetched?.(chunk.length);
        upstreamBytesRead(whole.length);
        if (this.expectedSize !== undefined && this.receivedBytes > this.expectedSize) {
          src.body.on("error", () => undefined).destroy();
          throw new FillError("FILL_SIZE_MISMATCH", `upstream sent more than its Content-Length ${this.expectedSize}`);
        }
        this.notify();
        if (this.isPassthrough) {
          if (this.readers.size === 0) {
            src.body.on("error", () => undefined).destroy();
            throw new FillError("FILL_UPSTREAM_FAILED", "pass-through fill lost all its readers");
          }
          // Bounded memory: wait for the slowest attached reader.
          while ([...this.readers].some((r) => r.queued > QUEUE_LIMIT)) await this.changed();
        }
      }
      if (this.expectedSize !== undefined && this.receivedBytes !== this.expectedSize) {
        throw new FillError("FILL_SIZE_MISMATCH", `upstream sent ${this.receivedBytes} of ${this.expectedSize} bytes`);
      }
      const actual = `sha256:${this.hash.digest("hex")}`;
      if (actual !== this.digest) throw new FillError("FILL_DIGEST_MISMATCH", `upstream bytes hash to ${actual}`);
      this.expectedSize = this.receivedBytes;
      if (fh && !this.isPassthrough) {
        await fh.close();
        fh = undefined;
        if (claim && !(await claim.stillMine())) throw new FillError("FILL_CLAIM_LOST", "another process took this fill over");
        const blob = await store.commitBlob(this.where, this.digest, this.receivedBytes);
        this.where = store.blobPath(this.digest);
        this.fillState = "done";
        events.onDone?.(this, blob);
      } else {
        this.fillState = "done";
        await unlink(this.where).catch(() => undefined);
      }
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }
}

const FOLLOW_POLL_MS = 20;

export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

async function readLimited(body: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (n < limit) parts.push(chunk.subarray(0, limit - n));
      n += chunk.length;
    }
  } catch {
    // A broken error body is not worth failing over.
  }
  return Buffer.concat(parts);
}
