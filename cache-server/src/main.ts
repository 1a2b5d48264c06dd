#!/usr/bin/env node
// Entry file: `node cache-server/dist/main.js /config.yml` (also what /start.sh runs).
// Exits non-zero before listening when the configuration is wrong.
import { startCacheServer } from "./app.js";
import { ConfigError, formatProblem, loadConfigFile } from "./config.js";
import { bufferedStdout, createLogger } from "./log.js";

async function main(argv: readonly string[]): Promise<number> {
  const path = argv[0];
  if (!path || argv.length > 1) {
    process.stderr.write("usage: cache-server <config.yml>\n");
    return 2;
  }
  let loaded;
  try {
    loaded = await loadConfigFile(path);
  } catch (err) {
    if (err instanceof ConfigError) {
      const logger = createLogger("info");
      for (const p of err.problems) logger.error({ key: p.path, line: p.line, col: p.col }, `invalid configuration: ${formatProblem(p)}`);
      process.stderr.write(`cache-server: invalid configuration ${path}:\n${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const out = bufferedStdout();
  const logger = createLogger(loaded.config.logLevel, out);
  for (const w of loaded.warnings) logger.warn({ key: w.path, line: w.line }, `configuration: ${formatProblem(w)}`);
  const running = await startCacheServer({ config: loaded.config, logger });
  const stop = (signal: string): void => {
    logger.info({ signal }, "shutting down");
    running.close().then(
      () => {
        out.flushSync();
        process.exit(0);
      },
      () => {
        out.flushSync();
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`cache-server: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
