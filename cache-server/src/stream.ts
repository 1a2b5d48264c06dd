// Moving bytes to a client: from a committed file, or from a fill in progress. Both read with
// large positioned reads on one FileHandle into two reused buffers and write the next chunk only
// after the socket took the previous one (chunk-writer.ts), so memory per request stays at two
// chunks whatever the blob size or the client's speed.
import { open, type FileHandle } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { CHUNK, ChunkWriter } from "./chunk-writer.js";
import type { Fill } from "./fill.js";
import type { FillReader } from "./fill-reader.js";

/**
 * Sends [start, end) of an open file (not closed here). `complete: false` means the client left.
 * Reads and writes overlap through two pooled buffers (chunk-writer.ts): memory per download is
 * two chunks whatever the blob size and the client's speed, and no chunk becomes garbage.
 */
export async function sendFile(res: ServerResponse, fh: FileHandle, start: number, end: number): Promise<{ sent: number; complete: boolean }> {
  let pos = start;
  const out = new ChunkWriter(res);
  try {
    while (pos < end) {
      const buf = out.buffer();
      const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, end - pos), pos);
      if (bytesRead === 0) throw new Error("short read from store");
      if (!(await out.send(bytesRead))) return { sent: pos - start, complete: false };
      pos += bytesRead;
    }
    if (!(await out.settle())) return { sent: pos - start, complete: false };
    res.end();
    return { sent: pos - start, complete: true };
  } catch (err) {
    res.destroy(err instanceof Error ? err : new Error(String(err)));
    return { sent: pos - start, complete: false };
  } finally {
    out.close();
  }
}

/**
 * Streams a fill to a client as bytes arrive. Ends cleanly only after the fill verified; on a
 * failed fill the socket is destroyed so the client sees an error, never a short clean body.
 * A reader that stops reading stops this loop at its pending write: it holds two chunks, and
 * the fill (which writes to disk, not to readers) is never slowed by it.
 */
export async function sendFromFill(
  res: ServerResponse,
  reader: FillReader,
  fallbackPath: string,
): Promise<{ sent: number; outcome: "complete" | "cut" | "client-gone" }> {
  const fill: Fill = reader.fill;
  let fh: FileHandle | undefined;
  let pos = 0;
  const out = new ChunkWriter(res);
  const onClose = (): void => reader.detach();
  res.once("close", onClose);
  try {
    for (;;) {
      if (res.destroyed || reader.detached) return { sent: pos, outcome: "client-gone" };
      const limit = fill.sendable();
      if (pos < limit) {
        let ok: boolean;
        let n: number;
        if (pos < fill.fileBytes) {
          if (!fh) fh = await open(fill.path, "r").catch(() => open(fallbackPath, "r"));
          const want = Math.min(CHUNK, Math.min(limit, fill.fileBytes) - pos);
          const { bytesRead } = await fh.read(out.buffer(), 0, want, pos);
          if (bytesRead === 0) throw new Error("short read from fill");
          n = bytesRead;
          ok = await out.send(n);
        } else {
          // Pass-through bytes (disk full): taken from this reader's memory queue, shared with
          // other readers, so written as they are, never into our own buffers.
          const buf = reader.take(pos, limit);
          if (buf.length === 0) {
            if (fill.state === "failed") break;
            await fill.changed();
            continue;
          }
          fill.notify();
          n = buf.length;
          ok = await out.sendShared(buf);
        }
        if (!ok) return { sent: pos, outcome: "client-gone" };
        pos += n;
        continue;
      }
      if (fill.state === "failed") break;
      if (fill.state === "done" && pos >= fill.received) {
        if (!(await out.settle())) return { sent: pos, outcome: "client-gone" };
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
    out.close();
    await fh?.close().catch(() => undefined);
  }
}
