// The DTR side of the controller: client, typed errors, and the DtrSync implementation.
export * from "./sync.js";
export * from "./errors.js";
export { DtrClient, type ContentCacheRecord, type DtrClientOptions, type RetryPolicy } from "./client.js";
export { createDtrSync, summarizeDtrStatus, describeDtrFailure, type DtrSyncOptions, type DtrSyncService, type DtrSyncSummary } from "./dtr-sync.js";
export { establishTrust, type DtrTrust } from "./trust.js";
export { readSecretRef } from "./secret.js";
