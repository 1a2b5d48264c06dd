// The controller as a plain process, for the SIGKILL test and the benchmark: DOCKER_HOST names the
// engine, DTRCACHE_SPEC the spec file, DTRCACHE_OWNER the owner id. Logs JSON lines on stdout.
// SIGTERM/SIGINT: finish the reconcile in hand, then exit 0. (The product CLI lives elsewhere;
// this runner only wires what the tests need.)
import pino from "pino";
import { createController, createDockerClient, DockerodeSwarmApi, fileSpecSource, resolveDockerConnection, type Logger } from "@dtrcache/controller";

async function main(): Promise<void> {
  const specPath = process.env["DTRCACHE_SPEC"];
  if (!specPath) throw new Error("DTRCACHE_SPEC is not set");
  const logger = pino({ base: null, redact: { paths: ["*.password", "*.key", "*.secret"], censor: "[redacted]" } }) as unknown as Logger;
  const docker = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(process.env["DOCKER_HOST"], process.env)));
  const controller = createController({
    docker,
    specSource: fileSpecSource(specPath, { debounceMs: 50 }),
    logger,
    id: process.env["DTRCACHE_OWNER"] ?? "dtrcache",
    allowEmpty: process.env["DTRCACHE_ALLOW_EMPTY"] === "1",
    resyncIntervalMs: 5_000,
    rolloutPollMs: 250,
  });
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    controller.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  await controller.start();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
});
