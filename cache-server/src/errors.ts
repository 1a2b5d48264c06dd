// One table of registry error codes (the OCI distribution spec's set plus the few we add) and
// one typed error class whose `code` callers match on. HTTP status lives in the table so that a
// handler never picks a status by hand.

export const OCI_ERRORS = {
  BLOB_UNKNOWN: { status: 404, message: "blob unknown to registry" },
  MANIFEST_UNKNOWN: { status: 404, message: "manifest unknown" },
  NAME_INVALID: { status: 400, message: "invalid repository name" },
  DIGEST_INVALID: { status: 400, message: "provided digest did not match uploaded content" },
  TAG_INVALID: { status: 400, message: "manifest tag did not match URI" },
  NAME_UNKNOWN: { status: 404, message: "repository name not known to registry" },
  UNAUTHORIZED: { status: 401, message: "authentication required" },
  DENIED: { status: 403, message: "requested access to the resource is denied" },
  UNSUPPORTED: { status: 405, message: "the operation is unsupported" },
  RANGE_INVALID: { status: 416, message: "requested range not satisfiable" },
  TOOMANYREQUESTS: { status: 429, message: "too many requests" },
  UPSTREAM_UNAVAILABLE: { status: 503, message: "no upstream registry is reachable" },
  UPSTREAM_ERROR: { status: 502, message: "the upstream registry returned an unexpected answer" },
  NOT_FOUND: { status: 404, message: "not found" },
} as const;

export type OciErrorCode = keyof typeof OCI_ERRORS;

export class RegistryError extends Error {
  readonly code: OciErrorCode;
  readonly status: number;
  constructor(code: OciErrorCode, detail?: string) {
    super(detail ? `${OCI_ERRORS[code].message}: ${detail}` : OCI_ERRORS[code].message);
    this.name = "RegistryError";
    this.code = code;
    this.status = OCI_ERRORS[code].status;
  }
}

export function ociErrorBody(code: OciErrorCode, detail?: string): string {
  const error: { code: string; message: string; detail?: string } = { code, message: OCI_ERRORS[code].message };
  if (detail !== undefined) error.detail = detail;
  return JSON.stringify({ errors: [error] });
}

/** Failures while talking to an upstream; `retryable` is decided where the failure is seen. */
export class UpstreamError extends Error {
  readonly code: "UPSTREAM_UNREACHABLE" | "UPSTREAM_STATUS" | "UPSTREAM_BUSY" | "UPSTREAM_REDIRECT";
  readonly retryable: boolean;
  constructor(code: UpstreamError["code"], message: string, retryable: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UpstreamError";
    this.code = code;
    this.retryable = retryable;
  }
}

/** A fill stopped before it produced verified bytes; readers must be cut off, never ended cleanly. */
export class FillError extends Error {
  readonly code: "FILL_DIGEST_MISMATCH" | "FILL_SIZE_MISMATCH" | "FILL_UPSTREAM_FAILED" | "FILL_UPSTREAM_STATUS" | "FILL_CLAIM_LOST" | "FILL_OWNER_FAILED";
  constructor(code: FillError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FillError";
    this.code = code;
  }
}
