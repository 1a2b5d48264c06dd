// Entry of a cache server run as a child process (see child-cache.ts), for tests where the
// cache's process itself may die: an uncaught exception ends this process and the parent sees
// the exit instead of the test runner dying with it. Usage: cache-child.cjs <config.yml>; the
// listening URL is sent to the parent over IPC, SIGTERM closes the server and exits 0.
import { startCacheServer } from "../app.js";
import { loadConfigFile } from "../config.js";
import { createLogger } from "../log.js";

async function main(configFile: string | undefined): Promise<void> {
  if (!configFile || !process.send) throw new Error("usage: cache-child <config.yml> (with an IPC channel)");
  const { config } = await loadConfigFile(configFile);
  // Errors only, straight to stderr: the parent keeps its tail to explain a crash.
  const cache = await startCacheServer({ config, logger: createLogger("error", process.stderr) });
  process.once("SIGTERM", () => void cache.close().finally(() => process.exit(0)));
  process.send({ url: cache.url });
}

main(process.argv[2]).catch((err: unknown) => {
  process.stderr.write(`cache-child: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
