// The real-engine test harness: private swarm engines, real registries, offline images.
export { HarnessError, type HarnessErrorCode } from "./errors.js";
export { startRegistry, parseAccessLog, readAccessLog, REGISTRY_BINARY, type RegistryHandle, type StartRegistryOptions, type AccessLogEntry } from "./registry.js";
export { freePort } from "./ports.js";
