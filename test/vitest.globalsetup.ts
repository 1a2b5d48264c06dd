import { join } from "node:path";
import type { TestProject } from "vitest/node";
import {
  buildServiceImage,
  cleanupStale,
  ensurePackages,
  pushTestImage,
  startRegistry,
  startSwarm,
  type RegistryHandle,
  type SwarmHandle,
} from "./harness/index.js";
import type { HarnessInfo } from "./harness/provided.js";

// Brings up the private engine and registry every integration test file shares, and tears them
// down after the last file, also when a file fails. State left by a crashed earlier run is
// removed first.
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const log = (message: string): void => {
    process.stderr.write(`harness: ${message} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  };
  await ensurePackages();
  const stale = await cleanupStale();
  if (stale.instances + stale.processes + stale.netns > 0) log(`removed stale state ${JSON.stringify(stale)}`);

  let swarm: SwarmHandle | undefined;
  let registry: RegistryHandle | undefined;
  const teardown = async (): Promise<void> => {
    await registry?.stop();
    await swarm?.stop();
  };
  try {
    swarm = await startSwarm({ nodes: 1 });
    log(`swarm ${swarm.id} up`);
    const dockerHost = swarm.manager.dockerHost;
    // anything that forgets -H talks to the private engine, never to the default one
    process.env.DOCKER_HOST = dockerHost;
    const [reg, testHttp, cacheServer, controller] = await Promise.all([
      startRegistry({ workDir: join(swarm.workDir, "registry"), listenHost: swarm.hostIp }),
      buildServiceImage("test-http", dockerHost),
      buildServiceImage("cache-server", dockerHost),
      buildServiceImage("controller", dockerHost),
    ]);
    registry = reg;
    if (!testHttp) throw new Error("test-http image was not built");
    log("registry up, images built");
    const testImage = await pushTestImage({ dockerHost, registryHostPort: registry.hostPort, workDir: swarm.workDir });
    log(`pushed ${testImage.ref}`);
    const info: HarnessInfo = {
      dockerHost,
      nodes: swarm.nodes,
      hostIp: swarm.hostIp,
      subnet: swarm.subnet,
      workDir: swarm.workDir,
      registry: { url: registry.url, hostPort: registry.hostPort, logFile: registry.logFile },
      testImage,
      images: {
        testHttp,
        ...(cacheServer ? { cacheServer } : {}),
        ...(controller ? { controller } : {}),
      },
    };
    project.provide("harness", info);
    log("ready");
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}
