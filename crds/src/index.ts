export * from "./duration.js";
export * from "./size.js";
export * from "./schema.js";
export * from "./model.js";
export { ISSUE_CODES, formatIssue, type IssueCode } from "./issues.js";
export { loadCacheSpec, loadCacheSpecFromText, loadCacheSpecFromTexts, type LoadResult, type SpecText } from "./load.js";
export { checkCertificates, checkPrivateKey } from "./pem.js";
export { CONTAINER_PATHS, cacheConfigDocument, generateHttpSecret, renderCacheConfig, type RenderOptions } from "./render.js";
