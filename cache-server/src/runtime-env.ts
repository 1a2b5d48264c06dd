// The process environment the cache runs with: set by the image (deploy/cache-server.Dockerfile,
// checked equal by test/contract/runtime-env.test.ts) and by every test and benchmark that starts
// the cache as a process, so what is measured is what ships. Values are read by glibc and Node at
// process start, which is why they are environment and not code.
//
// Measured with test/bench/cache/main.ts (docs/bench-cache.md, "Memory per process"):
// - NODE_OPTIONS --max-semi-space-size=8: Node 24 sizes V8's young generation from the host's
//   memory; under a hit-heavy load it grew to 64 MiB of committed new space on a 24 GiB host,
//   which stays resident. 8 MiB semi-spaces (16 MiB young generation) keep the hit rate.
// - MALLOC_ARENA_MAX=2: glibc gives each thread that mallocs (V8's helper threads, the libuv
//   pool) its own arena; freed memory left in them is not returned to the system.
// - MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ 128 KiB: glibc raises its mmap threshold
//   after each large free (up to 32 MiB), after which 256 KiB send buffers and 1 MiB blob copies
//   come from the heap and pin pages after they are freed; a fixed threshold keeps every large
//   buffer in its own mapping, returned to the system when freed.
export const RUNTIME_ENV: Readonly<Record<string, string>> = {
  NODE_OPTIONS: "--max-semi-space-size=8",
  MALLOC_ARENA_MAX: "2",
  MALLOC_MMAP_THRESHOLD_: "131072",
  MALLOC_TRIM_THRESHOLD_: "131072",
};

/** `base` with RUNTIME_ENV applied; NODE_OPTIONS already in `base` are kept, after ours (so they win). */
export function withRuntimeEnv(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const own = base.NODE_OPTIONS?.trim();
  return { ...base, ...RUNTIME_ENV, NODE_OPTIONS: own ? `${RUNTIME_ENV.NODE_OPTIONS} ${own}` : RUNTIME_ENV.NODE_OPTIONS };
}
