// Connection limits of the registry listener, so that neither many clients nor slow ones can hold
// the cache's sockets, memory or blobs:
//   - a connection cap: connections above it are refused at accept (Node's maxConnections), not
//     queued — a queued client waits with no answer while holding a kernel slot, a refused one
//     fails at once and docker retries the layer;
//   - a header timeout (slowloris: the request head must be complete within it, counted from the
//     connection or the previous response) and a whole-request timeout, answered 408 and closed;
//   - an idle timeout for keep-alive connections between requests;
//   - a stall timeout for responses whose client stopped reading: destroyed after that long
//     without progress, which ends the handler's send loop and so releases the blob's pin
//     (StoredBlob.readers) and its shared read handle, letting the sweeper expire it.
import type { Server, ServerOptions, ServerResponse } from "node:http";
import type { ConnectionLimits } from "./config.js";

export interface LimitEvents {
  onRefused?(): void;
  onStalled?(): void;
}

/**
 * Options that must be given to createServer: Node checks header and request timeouts on an
 * interval (30 s by default, which is why slowloris connections lived up to 90 s), so the
 * interval follows the shortest of them.
 */
export function serverOptions(limits: ConnectionLimits): ServerOptions {
  return {
    connectionsCheckingInterval: checkEvery(Math.min(limits.headerTimeoutMs, limits.requestTimeoutMs)),
    headersTimeout: limits.headerTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
  };
}

/** Applies the connection cap and the idle timeout to a created server. */
export function applyLimits(server: Server, limits: ConnectionLimits, events: LimitEvents = {}): void {
  server.maxConnections = limits.maxConnections;
  server.on("drop", () => events.onRefused?.());
  server.headersTimeout = limits.headerTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.idleTimeoutMs;
}

/** A check period fine enough for a bound of `ms`: a quarter of it, between 20 ms and 1 s. */
function checkEvery(ms: number): number {
  return Math.max(20, Math.min(1000, Math.floor(ms / 4)));
}

interface Watch {
  /** Bytes the socket had completed writing at the last change. */
  completed: number;
  /** When progress was last seen (or the response last had nothing waiting). */
  since: number;
}

/**
 * Destroys responses that have bytes waiting and made no progress for `stallMs`. Progress is the
 * socket's completed writes (bytesWritten minus what is still queued), sampled on one shared
 * timer: no per-chunk timers on the hot path. A response waiting for its upstream has nothing
 * queued and is never "stalled". Completed writes advance a chunk (256 KiB) at a time, so the
 * slowest client kept is about one chunk per stall timeout (4 KiB/s at the 60 s default).
 */
export class StallGuard {
  private readonly watched = new Map<ServerResponse, Watch>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stallMs: number,
    private readonly events: LimitEvents = {},
  ) {}

  track(res: ServerResponse): void {
    this.watched.set(res, { completed: -1, since: performance.now() });
    res.once("close", () => this.watched.delete(res));
    if (!this.timer) {
      this.timer = setInterval(() => this.check(), checkEvery(this.stallMs));
      this.timer.unref();
    }
  }

  get size(): number {
    return this.watched.size;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.watched.clear();
  }

  private check(): void {
    const now = performance.now();
    for (const [res, w] of this.watched) {
      const socket = res.socket;
      // Not yet on a socket (a pipelined response waiting its turn), or already gone.
      if (!socket || res.destroyed) continue;
      const queued = socket.writableLength;
      if (queued === 0) {
        w.since = now;
        continue;
      }
      const completed = socket.bytesWritten - queued;
      if (completed !== w.completed) {
        w.completed = completed;
        w.since = now;
        continue;
      }
      if (now - w.since >= this.stallMs) {
        this.watched.delete(res);
        this.events.onStalled?.();
        res.destroy(new Error("client stopped reading"));
      }
    }
    if (this.watched.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
