// Store errors with stable codes; the CLI maps each code to its exit code.
//   CONFLICT   another writer created the generation this write wanted (or the precondition
//              metadata.generation is stale): nothing was written, re-read and try again
//   NOT_FOUND  no such resource (or it was deleted)
//   INVALID    admission refused the change: `issues` carry `file:line:col path: message`
//   CORRUPT    a stored revision cannot be read back (hand-edited labels, foreign data)
import type { SpecIssue } from "@dtrcache/crds";

export type StoreErrorCode = "CONFLICT" | "NOT_FOUND" | "INVALID" | "CORRUPT";

export class StoreError extends Error {
  override readonly name = "StoreError";
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    readonly issues: readonly SpecIssue[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isStoreError(error: unknown, code?: StoreErrorCode): error is StoreError {
  return error instanceof StoreError && (code === undefined || error.code === code);
}
