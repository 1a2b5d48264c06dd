// The AbortSignal of the Engine API calls made inside a piece of work (one reconcile). It travels
// with the async context instead of as an argument because every SwarmApi wrapper (recording,
// write budget, event recording, fault injection, the write fence) forwards calls unchanged and
// every caller (observe, apply, teardown, the DTR record) would otherwise need a new parameter;
// the real adapter (dockerode.ts) reads it when it dials and hands it to the HTTP request, so an
// aborted reconcile closes its requests instead of leaving them to finish in the background.
import { AsyncLocalStorage } from "node:async_hooks";

const current = new AsyncLocalStorage<AbortSignal>();

/** Runs `work` with `signal` as the signal of every Engine API call it makes (awaited ones included). */
export function withCallSignal<T>(signal: AbortSignal, work: () => T): T {
  return current.run(signal, work);
}

/** The signal of the work this call belongs to, if any. */
export function callSignal(): AbortSignal | undefined {
  return current.getStore();
}
