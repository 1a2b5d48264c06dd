// FillReader's pass-through queue (disk full): bytes offered by the fill come out of take() in
// blob order from the reader's position, bytes it already sent from the file are dropped, and
// a detached reader holds nothing.
import { describe, expect, it } from "vitest";
import { Fill } from "./fill.js";

function reader(): ReturnType<Fill["attach"]> {
  return new Fill("sha256:00", "/nonexistent/tmp", true).attach();
}

describe("FillReader pass-through queue", () => {
  it("gives queued bytes from the reader's position up to the limit, piece by piece", () => {
    const r = reader();
    r.offer(Buffer.from("abcd"), 10);
    r.offer(Buffer.from("efgh"), 14);
    expect(r.queued).toBe(8);
    expect(r.take(10, 13).toString()).toBe("abc");
    expect(r.take(13, 18).toString()).toBe("d");
    expect(r.take(14, 18).toString()).toBe("efgh");
    expect(r.queued).toBe(0);
    expect(r.take(18, 18).length).toBe(0);
  });

  it("drops bytes before the position (already sent from the file)", () => {
    const r = reader();
    r.offer(Buffer.from("abcd"), 10);
    r.offer(Buffer.from("efgh"), 14);
    expect(r.take(15, 18).toString()).toBe("fgh");
    expect(r.queued).toBe(0);
  });

  it("holds nothing once detached, and the fill no longer counts it", () => {
    const fill = new Fill("sha256:00", "/nonexistent/tmp", true);
    const r = fill.attach();
    expect(fill.readerCount).toBe(1);
    r.offer(Buffer.from("abcd"), 0);
    r.detach();
    expect(fill.readerCount).toBe(0);
    expect(r.queued).toBe(0);
    r.offer(Buffer.from("efgh"), 4);
    expect(r.queued).toBe(0);
    expect(r.take(0, 8).length).toBe(0);
  });
});
