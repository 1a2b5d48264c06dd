#!/usr/bin/env node
// Entry file: `node cache-server/dist/main.js /config.yml` (also what /start.sh runs).
// Exits non-zero before listening when the configuration is wrong; SIGTERM/SIGINT close cleanly
// (which marks the store as cleanly stopped, see store.ts). With more than one worker (the
// `workers` option, default one per usable core) this process is the cluster primary (cluster.ts).
import { startFromArgs } from "./cli.js";
import { maskCredentials } from "./mask.js";

async function main(argv: readonly string[]): Promise<number> {
  const outcome = await startFromArgs(argv, { stderr: (text) => process.stderr.write(text), cluster: true });
  if (outcome.kind === "exit") return outcome.code;
  const { logger, flush } = outcome;
  // The primary stops its workers (each lets its fills commit); a worker or a single process closes itself.
  const close = outcome.kind === "primary" ? () => outcome.primary.close() : () => outcome.running.close().then(() => true);
  const stop = (signal: string): void => {
    logger.info({ signal }, "shutting down");
    close().then(
      (ok) => {
        flush();
        process.exit(ok ? 0 : 1);
      },
      () => {
        flush();
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
    // Whatever failed, its text is masked like config messages: it may quote a URL.
    process.stderr.write(`cache-server: ${maskCredentials((err as Error).message)}\n`);
    process.exit(1);
  },
);
