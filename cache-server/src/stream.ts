// Moving bytes to a client: from a committed file, or from a fill in progress. Both read with
// large positioned reads on one FileHandle and respect the socket's backpressure, so memory per
// request stays at about one chunk whatever the blob size.
import { open, type FileHandle } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import type { Fill, FillReader } from "./fill.js";

// Bodies up to SMALL go out in one read and one write; bigger ones stream in CHUNK pieces.
// 256 KiB chunks keep 16 concurrent large downloads well inside the memory budget at the same
// throughput as 1 MiB chunks (measured with bench:cache).
export const SMALL = 1024 * 1024;
export const CHUNK = 256 * 1024;

/**
 * Writes one chunk. "drained" means the socket has taken every byte, so the caller may reuse
 * the buffer; "buffered" means the stream still holds it; "closed" means the client went away.
 */
export function writeChunk(res: ServerResponse, buf: Buffer): Promise<"drained" | "buffered" | "closed"> {
  if (res.destroyed) return Promise.resolve("closed");
  if (res.write(buf)) return Promise.resolve("buffered");
  return new Promise((resolve) => {
    const done = (r: "drained" | "closed"): void => {
      res.off("drain", onDrain);
      res.off("close", onClose);
      resolve(r);
    };
    const onDrain = (): void => done("drained");
    const onClose = (): void => done("closed");
    res.on("drain", onDrain);
    res.on("close", onClose);
  });
}

/** Sends [start, end) of an open file (not closed here). `complete: false` means the client left. */
export async function sendFile(res: ServerResponse, fh: FileHandle, start: number, end: number): Promise<{ sent: number; complete: boolean }> {
  let pos = start;
  try {
    // Small bodies go out in one write together with the headers.
    if (end - start <= SMALL) {
      const buf = Buffer.allocUnsafe(end - start);
      const { bytesRead } = await fh.read(buf, 0, buf.length, start);
      if (bytesRead !== buf.length) throw new Error("short read from store");
      res.end(buf);
      return { sent: bytesRead, complete: true };
    }
    // One buffer per download, reused whenever the socket has drained it: no garbage per
    // chunk, so 16 concurrent large downloads stay at a few MiB of buffers.
    let buf = Buffer.allocUnsafeSlow(CHUNK);
    while (pos < end) {
      const want = Math.min(CHUNK, end - pos);
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      if (bytesRead === 0) throw new Error("short read from store");
      pos += bytesRead;
      const r = await writeChunk(res, buf.subarray(0, bytesRead));
      if (r === "closed") return { sent: pos - start, complete: false };
      if (r === "buffered") buf = Buffer.allocUnsafeSlow(CHUNK);
    }
    res.end();
    return { sent: pos - start, complete: true };
  } catch (err) {
    res.destroy(err instanceof Error ? err : new Error(String(err)));
    return { sent: pos - start, complete: false };
  }
}

/**
 * Streams a fill to a client as bytes arrive. Ends cleanly only after the fill verified; on a
 * failed fill the socket is destroyed so the client sees an error, never a short clean body.
 */
export async function sendFromFill(res: ServerResponse, reader: FillReader, fallbackPath: string): Promise<{ sent: number; outcome: "complete" | "cut" | "client-gone" }> {
  const fill: Fill = reader.fill;
  let fh: FileHandle | undefined;
  let pos = 0;
  let spare: Buffer | undefined;
  const onClose = (): void => reader.detach();
  res.once("close", onClose);
  try {
    for (;;) {
      if (res.destroyed || reader.detached) return { sent: pos, outcome: "client-gone" };
      const limit = fill.sendable();
      if (pos < limit) {
        let buf: Buffer;
        // Only our own read buffer may be reused; queued chunks are shared with other readers.
        let own: Buffer | undefined;
        if (pos < fill.fileBytes) {
          if (!fh) fh = await open(fill.path, "r").catch(() => open(fallbackPath, "r"));
          const want = Math.min(CHUNK, Math.min(limit, fill.fileBytes) - pos);
          const b = spare ?? Buffer.allocUnsafeSlow(CHUNK);
          spare = undefined;
          own = b;
          const { bytesRead } = await fh.read(b, 0, want, pos);
          if (bytesRead === 0) throw new Error("short read from fill");
          buf = b.subarray(0, bytesRead);
        } else {
          // Pass-through bytes (disk full): taken from this reader's memory queue.
          buf = takeQueued(reader, pos, limit);
          if (buf.length === 0) {
            if (fill.state === "failed") break;
            await fill.changed();
            continue;
          }
          fill.notify();
        }
        pos += buf.length;
        const r = await writeChunk(res, buf);
        if (r === "closed") return { sent: pos, outcome: "client-gone" };
        if (r === "drained" && own) spare = own;
        continue;
      }
      if (fill.state === "failed") break;
      if (fill.state === "done" && pos >= fill.received) {
        res.end();
        return { sent: pos, outcome: "complete" };
      }
      await fill.changed();
    }
    res.destroy(fill.error ?? new Error("fill failed"));
    return { sent: pos, outcome: "cut" };
  } catch (err) {
    res.destroy(err instanceof Error ? err : new Error(String(err)));
    return { sent: pos, outcome: "cut" };
  } finally {
    res.off("close", onClose);
    reader.detach();
    await fh?.close().catch(() => undefined);
  }
}

function takeQueued(reader: FillReader, pos: number, limit: number): Buffer {
  // Drop queued bytes the reader already got from the file.
  while (reader.queue.length > 0 && reader.queueBase >= 0) {
    const head = reader.queue[0];
    if (!head) break;
    if (reader.queueBase + head.length <= pos) {
      reader.queue.shift();
      reader.queueBase += head.length;
      reader.queued -= head.length;
      continue;
    }
    const from = pos - reader.queueBase;
    const to = Math.min(head.length, limit - reader.queueBase);
    if (to <= from) return Buffer.alloc(0);
    const out = head.subarray(from, to);
    if (to === head.length) {
      reader.queue.shift();
      reader.queueBase += head.length;
      reader.queued -= head.length;
    } else {
      reader.queue[0] = head.subarray(to);
      reader.queueBase += to;
      reader.queued -= to;
    }
    return out;
  }
  return Buffer.alloc(0);
}
