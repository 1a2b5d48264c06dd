// Sending file bytes to a socket without making garbage. A download owns two read buffers: one
// is on its way into the kernel while the next chunk is read into the other. A buffer is read
// into again only after the socket's write callback said the kernel has taken it, so at most
// two chunks per download exist at any time, however fast or slow the client reads.
//
// Why not `res.write() === true` as "free to reuse": on loopback and fast links the kernel often
// takes a whole chunk synchronously and write() returns true, but it also returns true while
// up to highWaterMark bytes are still queued in user space. Allocating a fresh buffer in that case
// (what the code did before) turned every chunk of every fast download into a dead 256 KiB
// ArrayBuffer; V8 collects those only once ~64 MiB of external memory has piled up since its last
// full GC, and glibc keeps the freed pages, so peak RSS grew with the number of fast downloads.
//
// Buffers come from a small process-wide free list, so a busy cache reuses the same few MiB
// instead of asking malloc for (and fragmenting) fresh ones per request.
import type { ServerResponse } from "node:http";

export const CHUNK = 256 * 1024;
/** Free buffers kept for reuse (8 MiB: 16 concurrent large downloads' worth). */
const POOL_MAX = 32;
const pool: Buffer[] = [];

function acquire(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
}

function release(buf: Buffer): void {
  if (pool.length < POOL_MAX) pool.push(buf);
}

/** How many free chunk buffers the process holds (tests: a finished download gives its buffers back). */
export function pooledBuffers(): number {
  return pool.length;
}

/**
 * Writes `buf` and resolves true once the socket has handed it to the kernel, false when the
 * client went away first. Waiting for the callback (not for "drain") is what makes reuse safe.
 */
export function writeFlushed(res: ServerResponse, buf: Buffer): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      res.off("close", onClose);
      resolve(ok);
    };
    const onClose = (): void => done(false);
    res.on("close", onClose);
    res.write(buf, (err) => done(!err));
  });
}

export class ChunkWriter {
  private readonly bufs: [Buffer, Buffer] = [acquire(), acquire()];
  private next = 0;
  private pending: Promise<boolean> | undefined;
  /** A write whose callback has not come: its buffer may still be read by the kernel. */
  private inFlight = false;

  constructor(private readonly res: ServerResponse) {}

  /** The buffer to read the next chunk into; never the one being written. */
  buffer(): Buffer {
    return this.bufs[this.next] as Buffer;
  }

  /** Sends the first `n` bytes of buffer(); false when the client is gone. */
  async send(n: number): Promise<boolean> {
    if (!(await this.settle())) return false;
    this.start(this.buffer().subarray(0, n));
    this.next ^= 1;
    return true;
  }

  /** Sends a buffer owned by someone else (pass-through bytes shared by several readers). */
  async sendShared(buf: Buffer): Promise<boolean> {
    if (!(await this.settle())) return false;
    this.start(buf);
    return true;
  }

  /** Waits for the last write; false when the client is gone. */
  async settle(): Promise<boolean> {
    const p = this.pending;
    this.pending = undefined;
    if (p) return p;
    return !this.res.destroyed;
  }

  /**
   * Gives the buffers back. A buffer whose write never completed (client gone mid-write) is
   * dropped rather than pooled: a destroyed socket's pending write may still reference it.
   */
  close(): void {
    if (this.inFlight) return;
    release(this.bufs[0]);
    release(this.bufs[1]);
  }

  private start(buf: Buffer): void {
    this.inFlight = true;
    this.pending = writeFlushed(this.res, buf).then((ok) => {
      if (ok) this.inFlight = false;
      return ok;
    });
  }
}
