// One error class for every Swarm call. The adapter decides the code at the throw site from the
// engine's status code, so the loop matches on `code` and never on message text:
//   CONFLICT     stale Version.Index ("update out of sequence"): re-read and retry at once
//   NOT_FOUND    the object is gone: usually fine (teardown) or drift to repair
//   IN_USE       config/secret still referenced by a service or task: normal during a rollout
//   NAME_TAKEN   create with a name that exists
//   INVALID      the engine rejected the spec (400): terminal until the spec changes
//   UNAVAILABLE  connection refused/reset, 5xx, timeouts: transient, back off and retry
//   NOT_MANAGER  the engine is not a Swarm manager: refuse to run
export type SwarmErrorCode = "CONFLICT" | "NOT_FOUND" | "IN_USE" | "NAME_TAKEN" | "INVALID" | "UNAVAILABLE" | "NOT_MANAGER";

export class SwarmError extends Error {
  override readonly name = "SwarmError";
  constructor(
    readonly code: SwarmErrorCode,
    readonly call: string,
    message: string,
    readonly statusCode?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get retryable(): boolean {
    return this.code === "UNAVAILABLE" || this.code === "CONFLICT" || this.code === "IN_USE";
  }
}

export function isSwarmError(error: unknown, code?: SwarmErrorCode): error is SwarmError {
  return error instanceof SwarmError && (code === undefined || error.code === code);
}

/** Maps an engine HTTP status + message onto a code. The message only refines 409 and 400. */
export function classifyEngineError(call: string, statusCode: number | undefined, message: string, cause?: unknown): SwarmError {
  const text = message.toLowerCase();
  let code: SwarmErrorCode;
  if (statusCode === undefined) code = "UNAVAILABLE";
  else if (statusCode === 404) code = "NOT_FOUND";
  else if (statusCode === 409) code = text.includes("in use") ? "IN_USE" : text.includes("already exists") ? "NAME_TAKEN" : "CONFLICT";
  else if (statusCode === 400 && text.includes("in use")) code = "IN_USE";
  else if (statusCode === 400 && text.includes("already exists")) code = "NAME_TAKEN";
  else if ((statusCode === 500 || statusCode === 400) && text.includes("out of sequence")) code = "CONFLICT";
  else if (statusCode === 503 && text.includes("not a swarm manager")) code = "NOT_MANAGER";
  else if (statusCode === 400 || statusCode === 422) code = "INVALID";
  else code = "UNAVAILABLE";
  return new SwarmError(code, call, `${call}: ${message}`, statusCode, { cause });
}
