import { describe, expect, it } from "vitest";
import { watchView } from "./watch.js";

describe("status --watch", () => {
  it("prints the first view, then only changes (errors included), until stopped", async () => {
    const views = ["a", "a", "b", new Error("cannot reach the status endpoint"), "b", "b"];
    let i = 0;
    const out: string[] = [];
    const stop = new AbortController();
    await watchView(
      async () => {
        const v = views[Math.min(i, views.length - 1)];
        i += 1;
        if (i >= views.length) stop.abort();
        if (v instanceof Error) throw v;
        return v ?? "";
      },
      { intervalMs: 1, signal: stop.signal, write: (t) => out.push(t), now: () => new Date(0) },
    );
    expect(out).toEqual([
      "--- 1970-01-01T00:00:00.000Z\na\n",
      "--- 1970-01-01T00:00:00.000Z\nb\n",
      "--- 1970-01-01T00:00:00.000Z\n(cannot reach the status endpoint)\n",
      "--- 1970-01-01T00:00:00.000Z\nb\n",
    ]);
  });
});
