import type { SwarmNode } from "./swarm.js";

/** What the integration global setup hands to every test file via `inject("harness")`. Plain data only. */
export interface HarnessInfo {
  /** The manager node's engine: unix:///run/dtrcache-h/<id>/n1.sock, never the default engine. */
  dockerHost: string;
  nodes: SwarmNode[];
  /** The host's address in the test subnet; servers tests start for tasks to reach listen here. */
  hostIp: string;
  subnet: string;
  /** Per-run directory (removed at teardown); tests may create subdirectories here. */
  workDir: string;
  registry: {
    url: string;
    hostPort: string;
    /** The registry's access log; parse with readAccessLog(). */
    logFile: string;
  };
  testImage: {
    /** HOST:PORT/hello/web:1 */
    ref: string;
    repository: string;
    tag: string;
    /** Manifest digest as pushed (sha256:...). */
    digest: string;
  };
  images: {
    testHttp: string;
    /** Absent when cache-server has not been compiled. */
    cacheServer?: string;
    /** Absent when the controller has not been compiled. */
    controller?: string;
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    harness: HarnessInfo;
  }
}
