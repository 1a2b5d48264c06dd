/** Stable codes for every way the harness can fail; tests and scripts match on `code`. */
export type HarnessErrorCode =
  "NOT_ROOT" | "PACKAGE_MISSING" | "COMMAND_FAILED" | "TIMEOUT" | "PROCESS_EXITED" | "NO_FREE_SUBNET" | "ENTRY_MISSING" | "BAD_ARGUMENT";

export class HarnessError extends Error {
  override readonly name = "HarnessError";
  constructor(
    readonly code: HarnessErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
