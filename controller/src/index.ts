// Public API of the controller package: what the CLI, the status endpoint, tests and the
// benchmark wire together. Only entry files construct dockerode (createDockerClient).
export {
  createController,
  classifyError,
  type Controller,
  type ControllerOptions,
  type ReconcileReport,
  type ReconcileEvent,
  type Clock,
} from "./controller.js";
export { ControllerError, type ControllerErrorCode } from "./errors.js";
export { silentLogger, memoryLogger, type Logger, type LogEntry } from "./logger.js";
export { WorkQueue, type QueueOptions, type WorkResult, type ErrorClass } from "./queue.js";
export { fileSpecSource, staticSpecSource, type SpecSource, type FileSourceOptions } from "./source.js";
export {
  setCondition,
  conditionOf,
  type CacheStatus,
  type Condition,
  type ConditionType,
  type ControllerStatus,
  type RevisionStatus,
  type SpecStatus,
} from "./status.js";
export type { Action, ActualCache, Plan, PlanContext, RolloutState } from "./reconcile/planner.js";
export { planCache, planTeardown } from "./reconcile/planner.js";
export type { FieldDiff } from "./reconcile/normalize.js";
export type { ContainerOptions, DesiredCache, DesiredBlob } from "./reconcile/desired.js";
export type { DtrCaProvider } from "./reconcile/materials.js";
export { generateSelfSigned, type GeneratedPair } from "./reconcile/selfsigned.js";
export * as labels from "./reconcile/labels.js";
export * from "./swarm/api.js";
export { SwarmError, isSwarmError, classifyEngineError, type SwarmErrorCode } from "./swarm/errors.js";
export { DockerodeSwarmApi } from "./swarm/dockerode.js";
export { resolveDockerConnection, createDockerClient, ConnectionError, type DockerConnection, type DockerEnv } from "./swarm/connection.js";
export { recordSwarmApi, type RecordingSwarmApi, type CallRecord } from "./swarm/recording.js";
export { faultySwarmApi, type FaultySwarmApi, type Fault } from "./swarm/faulty.js";
export { FakeSwarm } from "./swarm/fake.js";
export type { DtrSync, DtrCacheStatus, DtrRemoval, UserAssignment } from "./dtr/sync.js";
export { startRuntime, assembleController, type Runtime, type RuntimeOptions } from "./cli/runtime.js";
export { SpecStore } from "./store/store.js";
export { storeSpecSource } from "./store/source.js";
export { formatStatusTable } from "./cli/format.js";
export { registerControllerMetrics, type ControllerMetrics } from "./cli/metrics.js";
