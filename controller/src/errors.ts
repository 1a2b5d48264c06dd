// Controller errors with stable codes. Whether an error is retried is decided here, at the
// definition, not by whoever catches it.
export type ControllerErrorCode =
  | "MATERIAL_UNREADABLE"
  | "UPSTREAM_CERT_PENDING"
  | "NOT_MANAGER"
  | "SPEC_INVALID"
  | "SPEC_EMPTY_REFUSED"
  | "ROLLOUT_TIMEOUT"
  | "TEARDOWN_PENDING"
  | "NODE_NOT_FOUND"
  /** Too many writes for one cache in a short time (swarm/write-budget.ts): backed off, retried. */
  | "CONTENDED";

const RETRYABLE: ReadonlySet<ControllerErrorCode> = new Set(["MATERIAL_UNREADABLE", "UPSTREAM_CERT_PENDING", "ROLLOUT_TIMEOUT", "TEARDOWN_PENDING", "NODE_NOT_FOUND", "CONTENDED"]);

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
