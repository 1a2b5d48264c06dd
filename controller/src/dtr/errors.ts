// Typed errors of the DTR side. Callers (the reconciler, the status endpoint) match on `code`,
// never on messages; `retryable` is decided where the error is thrown. Messages name the call
// and DTR's own error code but never carry credentials.

export type DtrErrorCode =
  | "DTR_UNAUTHENTICATED"
  | "DTR_FORBIDDEN"
  | "DTR_NOT_FOUND"
  | "DTR_BAD_REQUEST"
  | "DTR_UNAVAILABLE"
  | "DTR_TIMEOUT"
  | "DTR_PROTOCOL"
  | "DTR_CREDENTIALS"
  | "DTR_TRUST"
  | "DTR_USERS_NOT_RESET"
  | "DTR_NOT_OWNED";

export class DtrError extends Error {
  override readonly name: string = "DtrError";
  constructor(
    readonly code: DtrErrorCode,
    message: string,
    readonly retryable: boolean,
    /** HTTP status DTR answered with, when it answered. */
    readonly status?: number,
    /** DTR's own error code from `{"errors":[{"code"}]}` (e.g. NO_SUCH_USER), when present. */
    readonly dtrCode?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** 401: the admin credentials were refused. Not retried: a wrong password stays wrong. */
export class DtrUnauthenticatedError extends DtrError {
  override readonly name = "DtrUnauthenticatedError";
  constructor(message: string, dtrCode?: string) {
    super("DTR_UNAUTHENTICATED", message, false, 401, dtrCode);
  }
}

/** 403: the account is not allowed to do this (e.g. not an admin). */
export class DtrForbiddenError extends DtrError {
  override readonly name = "DtrForbiddenError";
  constructor(message: string, dtrCode?: string) {
    super("DTR_FORBIDDEN", message, false, 403, dtrCode);
  }
}

/** 404: NO_SUCH_USER, NO_SUCH_CONTENT_CACHE, or an unknown route. */
export class DtrNotFoundError extends DtrError {
  override readonly name = "DtrNotFoundError";
  constructor(message: string, dtrCode?: string) {
    super("DTR_NOT_FOUND", message, false, 404, dtrCode);
  }
}

/** 400: DTR refused the request's content (INVALID_USER_SETTINGS, invalid cache details). */
export class DtrBadRequestError extends DtrError {
  override readonly name = "DtrBadRequestError";
  constructor(message: string, dtrCode?: string) {
    super("DTR_BAD_REQUEST", message, false, 400, dtrCode);
  }
}

/** 5xx, 408, 429 or a network failure: DTR is down or overloaded; worth retrying. */
export class DtrUnavailableError extends DtrError {
  override readonly name = "DtrUnavailableError";
  constructor(message: string, status?: number, dtrCode?: string, options?: { cause?: unknown }) {
    super("DTR_UNAVAILABLE", message, true, status, dtrCode, options);
  }
}

/** A single call took longer than the client's per-request timeout. */
export class DtrTimeoutError extends DtrError {
  override readonly name = "DtrTimeoutError";
  constructor(message: string) {
    super("DTR_TIMEOUT", message, true);
  }
}

/** DTR answered something the contract does not allow (wrong status or body shape). */
export class DtrProtocolError extends DtrError {
  override readonly name = "DtrProtocolError";
  constructor(message: string, status?: number) {
    super("DTR_PROTOCOL", message, false, status);
  }
}

/** The admin password/token reference could not be resolved (unset variable, unreadable file). */
export class DtrCredentialsError extends DtrError {
  override readonly name = "DtrCredentialsError";
  constructor(message: string) {
    super("DTR_CREDENTIALS", message, false);
  }
}

/** DTR's CA could not be read or fetched. Fetching over the network is retryable. */
export class DtrTrustError extends DtrError {
  override readonly name = "DtrTrustError";
  constructor(message: string, retryable: boolean, options?: { cause?: unknown }) {
    super("DTR_TRUST", message, retryable, undefined, undefined, options);
  }
}

export function isDtrError(error: unknown): error is DtrError {
  return error instanceof DtrError;
}
