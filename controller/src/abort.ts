// Cancellation shared by every layer: the error an aborted wait or call rejects with, and a way to
// stop waiting for a call that takes no signal. Kept apart from the runner (which decides when to
// abort) so that lower layers such as swarm/ can use it without importing the runner.

/** The error a wait rejects with when its signal aborts; `code` as in Node's own AbortError. */
export class AbortedError extends Error {
  override readonly name = "AbortError";
  readonly code = "ABORT_ERR";
  constructor(reason?: unknown) {
    super(reason instanceof Error ? reason.message : "the operation was aborted", { cause: reason });
  }
}

/**
 * Settles with `work`, or rejects with AbortedError when the signal aborts first. For calls that
 * take no signal (the Engine API through SwarmApi): the call itself runs on, its answer is
 * dropped, and the caller is free at once. Safe for the reconciler because every pass re-observes
 * what a dropped write may have done.
 */
export function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(new AbortedError(signal.reason));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new AbortedError(signal.reason));
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
