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
import { open, unlink, type FileHandle } from "node:fs/promises";
import type { Readable } from "node:stream";
import type { BlobStore, StoredBlob } from "./store.js";
import { FillError } from "./errors.js";

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

export class FillReader {
  queue: Buffer[] = [];
  queueBase = -1;
  queued = 0;
  detached = false;
  constructor(readonly fill: Fill) {}
  detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.queue = [];
    this.queued = 0;
    this.fill.readers.delete(this);
    this.fill.notify();
  }
}

export class Fill {
  readonly readers = new Set<FillReader>();
  state: "starting" | "running" | "done" | "failed" = "starting";
  error: Error | undefined;
  /** Where the bytes are: the temp file, or the blob path once committed. */
  path: string;
  /** Bytes received from upstream (and hashed). */
  received = 0;
  /** Bytes durably in the file at `path` (stops growing in pass-through mode). */
  fileBytes = 0;
  passthrough: boolean;
  size: number | undefined;
  mediaType: string | undefined;
  readonly ready: Promise<FillStart | FillRefused>;
  private resolveReady!: (v: FillStart | FillRefused) => void;
  private waiters: (() => void)[] = [];
  private readonly hash: Hash = createHash("sha256");

  constructor(readonly digest: string, tempPath: string, passthrough: boolean) {
    this.path = tempPath;
    this.passthrough = passthrough;
    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
  }

  attach(): FillReader {
    const r = new FillReader(this);
    this.readers.add(r);
    return r;
  }

  /** Bytes a reader may send now: everything once verified, all but the last byte before. */
  sendable(): number {
    if (this.state === "done") return this.received;
    return Math.max(0, this.received - 1);
  }

  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Runs the fill to completion; never throws (outcome is in `state`). */
  async run(source: () => Promise<FillSource>, store: BlobStore, events: FillEvents): Promise<void> {
    let fh: FileHandle | undefined;
    try {
      if (!this.passthrough) {
        try {
          fh = await open(this.path, "wx");
        } catch (err) {
          if (!isDiskFull(err)) throw err;
          this.passthrough = true;
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
      this.size = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
      this.mediaType = first(src.headers["content-type"]);
      this.state = "running";
      this.resolveReady({ ok: true, size: this.size, mediaType: this.mediaType });

      for await (const chunk of src.body as AsyncIterable<Buffer>) {
        this.hash.update(chunk);
        if (fh && !this.passthrough) {
          // Positioned writes may be short when the disk fills up: loop, and count only what
          // really landed in the file.
          let off = 0;
          try {
            while (off < chunk.length) {
              const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, this.fileBytes);
              if (bytesWritten === 0) throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
              off += bytesWritten;
              this.fileBytes += bytesWritten;
            }
          } catch (err) {
            if (!isDiskFull(err)) throw err;
            this.passthrough = true;
            events.onDiskFull?.(this, err as Error);
          }
        }
        if (this.passthrough) {
          const from = Math.max(0, this.fileBytes - this.received);
          const part = chunk.subarray(from);
          for (const r of this.readers) {
            if (r.queueBase < 0) r.queueBase = this.received + from;
            r.queue.push(part);
            r.queued += part.length;
          }
        }
        this.received += chunk.length;
        events.onFetched?.(chunk.length);
        if (this.size !== undefined && this.received > this.size) {
          src.body.on("error", () => undefined).destroy();
          throw new FillError("FILL_SIZE_MISMATCH", `upstream sent more than its Content-Length ${this.size}`);
        }
        this.notify();
        if (this.passthrough) {
          if (this.readers.size === 0) {
            src.body.on("error", () => undefined).destroy();
            throw new FillError("FILL_UPSTREAM_FAILED", "pass-through fill lost all its readers");
          }
          // Bounded memory: wait for the slowest attached reader.
          while ([...this.readers].some((r) => r.queued > QUEUE_LIMIT)) await this.changed();
        }
      }
      if (this.size !== undefined && this.received !== this.size) {
        throw new FillError("FILL_SIZE_MISMATCH", `upstream sent ${this.received} of ${this.size} bytes`);
      }
      const actual = `sha256:${this.hash.digest("hex")}`;
      if (actual !== this.digest) throw new FillError("FILL_DIGEST_MISMATCH", `upstream bytes hash to ${actual}`);
      this.size = this.received;
      if (fh && !this.passthrough) {
        await fh.close();
        fh = undefined;
        const blob = await store.commitBlob(this.path, this.digest, this.received);
        this.path = store.blobPath(this.digest);
        this.state = "done";
        events.onDone?.(this, blob);
      } else {
        this.state = "done";
      }
      this.notify();
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      this.error = e;
      this.state = "failed";
      this.resolveReady({ ok: false, status: 502, headers: {}, body: Buffer.alloc(0) });
      events.onFailed?.(this, e);
      this.notify();
    } finally {
      await fh?.close().catch(() => undefined);
      if (this.state !== "done" || this.passthrough) await unlink(this.path).catch(() => undefined);
    }
  }
}

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

/** One fill per digest at a time. */
export class FillCoordinator {
  private readonly fills = new Map<string, Fill>();
  /** Every run not yet finished, pass-through ones included (they are not in `fills`). */
  private readonly running = new Set<Promise<void>>();
  private diskFullUntil = 0;

  constructor(
    private readonly store: BlobStore,
    private readonly events: FillEvents,
    private readonly now: () => number,
  ) {}

  get inFlight(): number {
    return this.fills.size;
  }

  get(digest: string): Fill | undefined {
    return this.fills.get(digest);
  }

  /** Resolves when every fill started so far has finished (graceful shutdown: commits land first). */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /**
   * Joins the fill for `digest` or starts one with `source`. The returned reader is attached
   * synchronously, before any byte can arrive.
   */
  join(digest: string, source: () => Promise<FillSource>): { reader: FillReader; started: boolean } {
    const existing = this.fills.get(digest);
    if (existing && !existing.passthrough && existing.state !== "failed") return { reader: existing.attach(), started: false };
    const fill = new Fill(digest, this.store.tempPath(), this.now() < this.diskFullUntil);
    this.fills.set(digest, fill);
    const reader = fill.attach();
    const events: FillEvents = {
      ...this.events,
      onDiskFull: (f, err) => {
        // Later requests for this digest start their own pass-through fills; for a short while
        // new fills skip the disk entirely.
        if (this.fills.get(digest) === f) this.fills.delete(digest);
        this.diskFullUntil = this.now() + 5000;
        this.events.onDiskFull?.(f, err);
      },
    };
    const run = fill.run(source, this.store, events).finally(() => {
      if (this.fills.get(digest) === fill) this.fills.delete(digest);
      this.running.delete(run);
    });
    this.running.add(run);
    return { reader, started: true };
  }
}
