// The real-engine test harness: private swarm engines, real registries, offline images.
export { HarnessError, type HarnessErrorCode } from "./errors.js";
export {
  startRegistry,
  parseAccessLog,
  readAccessLog,
  REGISTRY_BINARY,
  type RegistryHandle,
  type StartRegistryOptions,
  type AccessLogEntry,
} from "./registry.js";
export { freePort } from "./ports.js";
export { startSwarm, cleanupStale, type SwarmHandle, type SwarmNode, type StartSwarmOptions } from "./swarm.js";
export { ensurePackages, dockerCli, findBinary, ALL_PACKAGES, ENGINE_PACKAGES, type SystemPackage } from "./packages.js";
export { ping } from "./engine.js";
export { buildOfflineImage, buildServiceImage, ensureBaseImage, repoRoot, type BuildOfflineImageOptions, type ServiceName } from "./images.js";
export { pushTestImage, type PushedImage } from "./testimage.js";
export type { HarnessInfo } from "./provided.js";
