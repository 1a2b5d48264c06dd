// Releasing the upstream socket's dead read buffers while a fill runs (issue 12, bounded memory).
//
// Every socket read of an upstream body gets a fresh ~64 KiB ArrayBuffer from Node (undici hands
// slices of it to the fill, which hashes and writes them and drops them). Dead ArrayBuffers are
// freed only by a scavenge of V8's young generation, or by a full GC once ~64 MiB of external
// memory has piled up. On Node 24 the young generation is sized from the machine's memory (a
// 64 MiB semi-space on a 24 GiB host; Node 20 used far less), so a scavenge comes late and a
// fill at link speed peaks at 64-70 MiB of dead buffers; glibc keeps those pages afterwards, so
// the process's RSS stays up (measured, four 256 MiB fills in a row: arrayBuffers peak 68-77 MiB,
// RSS 157-166 MiB). A young-generation GC after every PACE_BYTES of upstream bytes frees them
// while they are few (measured: arrayBuffers peak 5-8 MiB, RSS 95-98 MiB, fill time within the
// noise of a loaded machine; every 8 MiB: 17-27 MiB). A scavenge of the cache's small young
// generation takes a fraction of a millisecond: ~130 of them per 256 MiB fill.
//
// The collector is reached through a fresh context after exposing it (`--expose-gc` at run time),
// so no node flag is needed wherever the cache runs. If that is ever refused, pacing is off and
// the cache works as before, with the higher peak.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

const PACE_BYTES = 2 * 1024 * 1024;

type MinorGc = (options: { type: "minor" }) => void;

function exposeGc(): MinorGc | undefined {
  try {
    const existing = (globalThis as { gc?: unknown }).gc;
    if (typeof existing === "function") return existing as MinorGc;
    setFlagsFromString("--expose-gc");
    const gc: unknown = runInNewContext("gc");
    return typeof gc === "function" ? (gc as MinorGc) : undefined;
  } catch {
    return undefined;
  }
}

let gc: MinorGc | undefined | null = null;
let since = 0;

/** Counts bytes read from an upstream socket; runs a young-generation GC every PACE_BYTES. */
export function upstreamBytesRead(n: number): void {
  since += n;
  if (since < PACE_BYTES) return;
  since = 0;
  if (gc === null) gc = exposeGc();
  gc?.({ type: "minor" });
}
