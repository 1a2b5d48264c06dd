// What the entry file does, minus the process: read the config, report a bad one (stderr and the
// JSON log, credentials masked by the config reader), or start the server. Kept apart from
// main.ts so tests can run it with their own stderr and log sink.
import cluster from "node:cluster";
import type { DestinationStream, Logger } from "pino";
import { startCacheServer, type RunningCache } from "./app.js";
import { startPrimary, workerCount, type Primary } from "./cluster.js";
import { ConfigError, formatProblem, loadConfigFile } from "./config.js";
import { bufferedStdout, createLogger } from "./log.js";

export interface CliIo {
  readonly stderr: (text: string) => void;
  /** Where JSON log lines go; the buffered stdout when absent. */
  readonly log?: DestinationStream & { flushSync?(): void };
  /** The entry file sets it: run `workers` processes (cluster.ts). Tests start one in-process server. */
  readonly cluster?: boolean;
}

export type CliOutcome =
  | { readonly kind: "exit"; readonly code: number }
  | { readonly kind: "running"; readonly running: RunningCache; readonly logger: Logger; flush(): void }
  | { readonly kind: "primary"; readonly primary: Primary; readonly logger: Logger; flush(): void };

export async function startFromArgs(argv: readonly string[], io: CliIo): Promise<CliOutcome> {
  const path = argv[0];
  if (!path || argv.length > 1) {
    io.stderr("usage: cache-server <config.yml>\n");
    return { kind: "exit", code: 2 };
  }
  let loaded;
  try {
    loaded = await loadConfigFile(path);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const logger = createLogger("info", io.log);
    for (const p of err.problems) logger.error({ key: p.path, line: p.line, col: p.col }, `invalid configuration: ${formatProblem(p)}`);
    io.log?.flushSync?.();
    io.stderr(`cache-server: invalid configuration ${path}:\n${err.message}\n`);
    return { kind: "exit", code: 1 };
  }
  const out = io.log ?? bufferedStdout();
  const logger = createLogger(loaded.config.logLevel, out);
  for (const w of loaded.warnings) logger.warn({ key: w.path, line: w.line }, `configuration: ${formatProblem(w)}`);
  if (io.cluster && cluster.isPrimary) {
    const count = workerCount(loaded.config);
    if (count > 1) return { kind: "primary", primary: await startPrimary(loaded.config, logger, count), logger, flush: () => out.flushSync?.() };
  }
  const running = await startCacheServer({ config: loaded.config, logger, clusterWorker: io.cluster === true && cluster.isWorker });
  return { kind: "running", running, logger, flush: () => out.flushSync?.() };
}
