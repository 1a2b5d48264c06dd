// What a registry service decided for one request, for the HTTP layer (server.ts) to write. The
// services never see the request or the response; the handler never decides anything but how to
// put an outcome on the wire.
import type { FileHandle } from "node:fs/promises";
import type { Logger } from "pino";
import type { Credential } from "./auth.js";
import type { OciErrorCode } from "./errors.js";
import type { FillReader } from "./fill-reader.js";

export type XCache = "HIT" | "MISS" | "STALE";

/** The client side of a request, as far as a service needs it (never the raw request). */
export interface RequestInfo {
  readonly cred: Credential;
  readonly authorization: string | undefined;
  /** The raw query string, passed upstream as it came (DTR's signed redirect queries). */
  readonly query: string;
  /** The client's Accept for manifests, or the default list. */
  readonly accept: string;
  readonly log: Logger;
}

export type Outcome =
  /** A registry error body (OCI error JSON) with the status of its code. */
  | { readonly kind: "error"; readonly code: OciErrorCode; readonly detail?: string; readonly headers?: Record<string, string> }
  /** The upstream's own answer passed on (refusals with their challenge, 404s, 429s). */
  | { readonly kind: "relay"; readonly status: number; readonly headers: Record<string, string>; readonly body: Buffer; readonly notFound?: OciErrorCode }
  | { readonly kind: "json"; readonly status: number; readonly body: string }
  | { readonly kind: "manifest"; readonly bytes: Buffer; readonly digest: string; readonly mediaType: string; readonly xcache: XCache }
  /** Headers only (HEAD of a blob the upstream has and this cache has not). */
  | { readonly kind: "head"; readonly status: number; readonly headers: Record<string, string>; readonly xcache: XCache }
  /**
   * A stored blob (or a range of it). `file` is open before the status goes out; `done` must be
   * called once the response ended (it releases the blob for the sweeper).
   */
  | {
      readonly kind: "file";
      readonly status: 200 | 206;
      readonly headers: Record<string, string>;
      readonly xcache: XCache;
      readonly file: { readonly fh: FileHandle; readonly start: number; readonly end: number } | undefined;
      readonly done: () => void;
    }
  /** A small stored blob (or a range of it) from its in-memory copy; `body` is empty for HEAD. */
  | { readonly kind: "buffer"; readonly status: 200 | 206; readonly headers: Record<string, string>; readonly xcache: XCache; readonly body: Buffer }
  /** A blob streamed from a fill in progress. */
  | { readonly kind: "fill"; readonly headers: Record<string, string>; readonly reader: FillReader; readonly fallbackPath: string };
