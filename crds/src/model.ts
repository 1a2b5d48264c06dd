// The loaded, validated desired state: what the loader returns and what the controller and the
// renderer consume. File paths are absolute, defaults are applied, references are resolved.
import type { ContentCacheSpec, DtrSpec } from "./schema.js";

/** Where a document (or a field inside it) was written. Lines and columns are 1-based. */
export interface SourceLocation {
  readonly file: string;
  readonly documentIndex: number;
  readonly line: number;
  readonly column: number;
}

export interface ResolvedDtr {
  readonly name: string;
  /** Spec with defaults applied; trust.caFile is absolute when set. */
  readonly spec: DtrSpec;
  readonly source: SourceLocation;
}

export interface ResolvedCache {
  readonly name: string;
  /** Spec with defaults applied; every file path (tls, extraCAFiles) is absolute. */
  readonly spec: ContentCacheSpec;
  /** The DTR this cache is registered with. */
  readonly dtr: ResolvedDtr;
  /**
   * Upstream URLs in order, resolved: an empty `upstreams` becomes [dtr.url]; {cache: NAME}
   * becomes that cache's externalURL.
   */
  readonly upstreamUrls: readonly string[];
  readonly source: SourceLocation;
}

/** The whole desired state loaded from one file or one directory. */
export interface CacheSpec {
  readonly dtrs: readonly ResolvedDtr[];
  readonly caches: readonly ResolvedCache[];
  /** Files that were read, in load order. */
  readonly files: readonly string[];
}

/** One user mistake: `file:line:col path: message`. Never carries secret values. */
export interface SpecIssue {
  /** Stable code, e.g. YAML_SYNTAX, INVALID_FIELD, UNKNOWN_FIELD, DUPLICATE_NAME, CHAIN_CYCLE. */
  readonly code: string;
  readonly file: string;
  readonly line?: number;
  readonly column?: number;
  /** Field path inside the document, e.g. "spec.blobTTL"; empty for whole-document problems. */
  readonly path: string;
  readonly message: string;
}
