// Controller errors with stable codes. Whether an error is retried is decided here, at the
// definition, not by whoever catches it. Every code is thrown somewhere: a code nobody throws is
// a promise to callers that the controller does not keep.
export type ControllerErrorCode =
  /** A TLS/CA file or Swarm reference of the spec cannot be read (reconcile/materials.ts). */
  | "MATERIAL_UNREADABLE"
  /** A chained cache's upstream has not generated its certificate yet. */
  | "UPSTREAM_CERT_PENDING"
  | "NOT_MANAGER"
  /** plan() without any spec that loaded. */
  | "SPEC_INVALID"
  /** A removed cache's objects are still in use, or its DTR side is not removed yet. */
  | "TEARDOWN_PENDING"
  /** Too many writes for one cache in a short time (swarm/write-budget.ts): backed off, retried. */
  | "CONTENDED"
  /** The controller stopped before a one-shot run of the cache began (queue.ts); not retried. */
  | "STOPPED";

const RETRYABLE: ReadonlySet<ControllerErrorCode> = new Set(["MATERIAL_UNREADABLE", "UPSTREAM_CERT_PENDING", "TEARDOWN_PENDING", "CONTENDED"]);

export class ControllerError extends Error {
  override readonly name = "ControllerError";
  constructor(
    readonly code: ControllerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}
