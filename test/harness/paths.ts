import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Where the harness keeps its per-run state. Sockets and pidfiles live under a short path in /run
 * (unix socket paths are limited to 108 bytes); engine data-roots live under /var/tmp, which is on
 * a disk filesystem that overlay2 accepts. Both can be moved with environment variables, e.g. for
 * a second checkout on the same machine.
 */
export function runRoot(): string {
  const fromEnv = process.env.DTRCACHE_HARNESS_RUN;
  if (fromEnv) return fromEnv;
  return process.getuid?.() === 0 ? "/run/dtrcache-h" : join(tmpdir(), `dtrcache-h-${process.getuid?.() ?? 0}`);
}

export function stateRoot(): string {
  return process.env.DTRCACHE_HARNESS_STATE ?? "/var/tmp/dtrcache-h";
}

/** Records of processes (registries, ...) started by a test process, for cleanupStale. */
export function processRecordsDir(): string {
  return join(runRoot(), "procs");
}

/** One directory per swarm instance, holding its owner record. */
export function instancesDir(): string {
  return join(runRoot(), "instances");
}
