#!/usr/bin/env node
// Entry file: `node cache-server/dist/main.js /config.yml` (also what /start.sh runs).
// Exits non-zero before listening when the configuration is wrong; SIGTERM/SIGINT close cleanly
// (which marks the store as cleanly stopped, see store.ts).
import { startFromArgs } from "./cli.js";
import { maskCredentials } from "./mask.js";

async function main(argv: readonly string[]): Promise<number> {
  const outcome = await startFromArgs(argv, { stderr: (text) => process.stderr.write(text) });
  if (outcome.kind === "exit") return outcome.code;
  const { running, logger, flush } = outcome;
  const stop = (signal: string): void => {
    logger.info({ signal }, "shutting down");
    running.close().then(
      () => {
        flush();
        process.exit(0);
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
