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

/** Writes one chunk; resolves false when the client went away. */
export function writeChunk(res: ServerResponse, buf: Buffer): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(buf)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      res.off("drain", onDrain);
      res.off("close", onClose);
      resolve(ok);
    };
    const onDrain = (): void => done(true);
    const onClose = (): void => done(false);
    res.on("drain", onDrain);
    res.on("close", onClose);
  });
}

/** Sends [start, end) of a file. Returns bytes sent; false-y completion means the client left. */
export async function sendFile(res: ServerResponse, path: string, start: number, end: number): Promise<{ sent: number; complete: boolean }> {
  const fh = await open(path, "r");
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
    while (pos < end) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, end - pos));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) throw new Error("short read from store");
      pos += bytesRead;
      if (!(await writeChunk(res, bytesRead === buf.length ? buf : buf.subarray(0, bytesRead)))) return { sent: pos - start, complete: false };
    }
    res.end();
    return { sent: pos - start, complete: true };
  } finally {
    await fh.close();
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
  const onClose = (): void => reader.detach();
  res.once("close", onClose);
  try {
    for (;;) {
      if (res.destroyed || reader.detached) return { sent: pos, outcome: "client-gone" };
      const limit = fill.sendable();
      if (pos < limit) {
        let buf: Buffer;
        if (pos < fill.fileBytes) {
          if (!fh) fh = await open(fill.path, "r").catch(() => open(fallbackPath, "r"));
          const want = Math.min(CHUNK, Math.min(limit, fill.fileBytes) - pos);
          const b = Buffer.allocUnsafe(want);
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
        if (!(await writeChunk(res, buf))) return { sent: pos, outcome: "client-gone" };
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
