// Command line for manual use and for tests that need a harness in another process:
//   up [--nodes N] [--registry]   start a swarm (and a registry on its host address), print one JSON
//                                 line describing it, keep it until SIGINT/SIGTERM, then tear down
//   cleanup                       remove what crashed runs left behind (cleanupStale)
// scripts/harness-up.mjs and scripts/harness-down.mjs bundle and run this file.
import { join } from "node:path";
import { HarnessError } from "./errors.js";
import { startRegistry, type RegistryHandle } from "./registry.js";
import { cleanupStale, startSwarm } from "./swarm.js";

async function up(args: string[]): Promise<void> {
  const nodesAt = args.indexOf("--nodes");
  const nodes = nodesAt >= 0 ? Number(args[nodesAt + 1]) : 1;
  const swarm = await startSwarm({ nodes });
  let registry: RegistryHandle | undefined;
  let done = false;
  const stop = async (): Promise<void> => {
    if (done) return;
    done = true;
    await registry?.stop();
    await swarm.stop();
  };
  try {
    if (args.includes("--registry")) registry = await startRegistry({ workDir: join(swarm.workDir, "registry"), listenHost: swarm.hostIp });
    const info = {
      id: swarm.id,
      pid: process.pid,
      nodes: swarm.nodes,
      dockerHost: swarm.manager.dockerHost,
      hostIp: swarm.hostIp,
      subnet: swarm.subnet,
      workDir: swarm.workDir,
      ...(registry ? { registry: { url: registry.url, hostPort: registry.hostPort, logFile: registry.logFile } } : {}),
    };
    process.stdout.write(`${JSON.stringify(info)}\n`);
  } catch (error) {
    await stop();
    throw error;
  }
  // signal handlers alone do not keep node running; the timer does until a signal arrives
  const keepAlive = setInterval(() => undefined, 60_000);
  await new Promise<void>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => resolve());
  });
  clearInterval(keepAlive);
  await stop();
}

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  if (command === "up") await up(args);
  else if (command === "cleanup") process.stdout.write(`${JSON.stringify(await cleanupStale())}\n`);
  else throw new HarnessError("BAD_ARGUMENT", `unknown command "${command ?? ""}" (use: up [--nodes N] [--registry] | cleanup)`);
}

main().catch((error: unknown) => {
  process.stderr.write(`harness: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
