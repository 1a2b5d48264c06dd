#!/usr/bin/env node
// dtrcache: the controller's command line. One binary, docker/kubectl conventions:
//   run              the reconcile loop and the status endpoint (what the Swarm service runs); the
//                    spec comes from the in-swarm store, or from a file with -f; one leader per id
//   reconcile --once one convergence pass from a shell; refused while a controller holds the lease
//   plan             dry run: what a converge would change, field by field; writes nothing
//   validate         check a spec file or directory; writes nothing, needs no engine
//   status           ask a running controller's status endpoint
//   apply, get, describe, edit, delete, history, rollback, diff: the store (store-commands.ts)
// Exit codes are listed in exit.ts and in `dtrcache --help`.
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError, Option } from "commander";
import { formatIssue, loadCacheSpec } from "@dtrcache/crds";
import { stringify } from "yaml";
import { ConnectionError } from "../swarm/connection.js";
import { isSwarmError } from "../swarm/errors.js";
import { ControllerError } from "../errors.js";
import { formatStatusTable } from "./format.js";
import { serverDryRun } from "./dry-run.js";
import { createLogger, type LogFormat, type LogLevel } from "./logger.js";
import { startRuntime } from "./runtime.js";
import type { RuntimeSnapshot } from "./snapshot.js";
import { waitForConvergence } from "./wait.js";
import { parseTimeout } from "./durations.js";
import { pendingLines, statusProblem, withStoreHeads } from "./convergence.js";
import { storedCacheGenerations } from "./store-heads.js";
import { CliError, EXIT } from "./exit.js";
import { registerStoreCommands } from "./store-commands.js";
import { DEFAULT_STATUS_URL, getStatusJson, readToken } from "./status-client.js";
import { watchView } from "./watch.js";
import { LeaderElector, LeaseHeldError } from "../lease/elector.js";
import { createDockerClient, resolveDockerConnection } from "../swarm/connection.js";
import { DockerodeSwarmApi } from "../swarm/dockerode.js";

export { EXIT, statusProblem };

const EXIT_HELP = `
Exit codes:
  0  success (reconcile --once: every cache Ready; validate: spec valid; apply: stored, and with
     --wait every applied cache Ready and DtrSynced at the stored revision; status: the spec is
     accepted and every cache shown is Ready at its stored revision)
  1  not Ready within --timeout (apply --wait: or Degraded on the new revision), resource not
     found, or a failure while running; status: the spec is rejected, or a cache shown is not
     Ready or still applying a newer stored revision (the table is still printed)
  2  invalid command line, invalid spec or change refused by admission (nothing was changed)
  3  engine or status endpoint unreachable, or the engine is not a swarm manager
  4  conflict: another writer changed the resource first (nothing was written; re-read, retry)
  5  reconcile --once refused: another live controller holds this owner id's lease

Environment:
  DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH   engine connection, as for the docker CLI
  DTRCACHE_STATUS_URL                                 status endpoint for \`status\` (default http://127.0.0.1:9090)
  DTRCACHE_STATUS_TOKEN                               bearer token for the status endpoint
  DTRCACHE_DTR_CHECK_INTERVAL                         run: default of --dtr-check-interval`;

function parseListen(value: string): { host: string; port: number } {
  const match = /^(.*):(\d+)$/.exec(value);
  const port = match ? Number(match[2]) : NaN;
  if (!match || !(port >= 0 && port <= 65535)) throw new InvalidArgumentError("expected HOST:PORT, e.g. 0.0.0.0:9090");
  return { host: match[1] === "" ? "0.0.0.0" : (match[1] ?? "0.0.0.0").replace(/^\[|\]$/g, ""), port };
}

/** Maps failures to exit codes; messages never include secrets (the errors below carry none). */
function toCliError(error: unknown): CliError {
  if (error instanceof CliError) return error;
  if (error instanceof ConnectionError) return new CliError(EXIT.unreachable, error.message);
  if (error instanceof LeaseHeldError) return new CliError(EXIT.leaseHeld, error.message);
  if (isSwarmError(error, "NOT_MANAGER") || isSwarmError(error, "UNAVAILABLE")) return new CliError(EXIT.unreachable, (error as Error).message);
  if (error instanceof ControllerError) return new CliError(EXIT.notReady, error.message);
  return new CliError(EXIT.notReady, error instanceof Error ? error.message : String(error));
}

async function validateSpec(file: string): Promise<void> {
  const result = await loadCacheSpec(file);
  if (!result.ok) throw new CliError(EXIT.invalid, `invalid spec, nothing changed:\n${result.issues.map(formatIssue).join("\n")}`);
}

export function buildProgram(): Command {
  const program = new Command("dtrcache")
    .description("Reconciles DTR content caches on Docker Swarm from a declarative CacheSpec")
    .version(process.env["DTRCACHE_VERSION"] ?? "0.1.0")
    .addHelpText("after", EXIT_HELP)
    .showHelpAfterError();

  // a fresh Option per command: commander keeps the Option object, so a shared one changed with
  // .default() for one command showed that default in another command's --help
  const logLevel = (level: LogLevel): Option => new Option("--log-level <level>", "log level").choices(["debug", "info", "warn", "error"]).default(level);
  const logFormat = (): Option =>
    new Option(
      "--log-format <format>",
      "log lines as text or JSON (one object a line, for collectors); default: text when stderr is a terminal, else json",
    ).choices(["text", "json"]);

  program
    .command("run")
    .description(
      "run the reconcile loop: keep the swarm and DTR matching the spec (the in-swarm store, or -f), serve status; one leader per owner id, others wait as standby",
    )
    .option("-f, --file <path>", "CacheSpec file or directory (default: the in-swarm store of this owner id)")
    .addOption(
      new Option("--lease-duration <duration>", "leader lease duration; a standby takes over this long after the leader stops renewing")
        .argParser(parseTimeout)
        .default(10_000, "10s"),
    )
    .addOption(new Option("--listen <host:port>", "status endpoint address").argParser(parseListen).default({ host: "0.0.0.0", port: 9090 }, "0.0.0.0:9090"))
    .option("--status-token-file <path>", "require this bearer token on the status endpoint (default: $DTRCACHE_STATUS_TOKEN)")
    .addOption(
      new Option(
        "--dtr-check-interval <duration>",
        "how often DTR's registration list is compared with what it confirmed; drift, or DTR answering again after an outage, starts a full verification (0 = off)",
      )
        .argParser(parseTimeout)
        .env("DTRCACHE_DTR_CHECK_INTERVAL")
        .default(10_000, "10s"),
    )
    .option("--allow-empty", "accept a spec with no caches and tear every owned cache down", false)
    .option("--id <owner>", "owner id written on every object; controllers with different ids never touch each other's objects", "dtrcache")
    .addOption(logLevel("info"))
    .addOption(logFormat())
    .addHelpText("after", EXIT_HELP)
    .action(
      async (opts: {
        file?: string;
        leaseDuration: number;
        listen: { host: string; port: number };
        statusTokenFile?: string;
        dtrCheckInterval: number;
        allowEmpty: boolean;
        id: string;
        logLevel: LogLevel;
        logFormat?: LogFormat;
      }) => {
        const logger = createLogger(opts.logLevel, undefined, opts.logFormat);
        let lost: ((reason: string) => void) | undefined;
        const leaseLost = new Promise<string>((resolve) => (lost = resolve));
        const runtime = await startRuntime({
          ...(opts.file !== undefined ? { specPath: opts.file } : { store: true }),
          lease: { onLost: (reason) => lost?.(reason), durationMs: opts.leaseDuration, renewMs: Math.max(500, Math.floor(opts.leaseDuration / 5)) },
          logger,
          listen: opts.listen,
          statusToken: readToken(opts.statusTokenFile, process.env["DTRCACHE_STATUS_TOKEN"]),
          allowEmpty: opts.allowEmpty,
          id: opts.id,
          controllerOptions: { dtrCheckMs: opts.dtrCheckInterval },
        });
        logger.info({ status: runtime.statusUrl }, "status endpoint listening");
        const reasonLost = await new Promise<string | undefined>((resolve) => {
          void leaseLost.then((reason) => {
            process.removeAllListeners("SIGINT");
            process.removeAllListeners("SIGTERM");
            void runtime.stop().then(
              () => resolve(reason),
              () => resolve(reason),
            );
          });
          const stop = (signal: string): void => {
            logger.info({ signal }, "shutting down: finishing the reconcile in hand");
            process.removeAllListeners("SIGINT");
            process.removeAllListeners("SIGTERM");
            void runtime.stop().then(
              () => resolve(undefined),
              () => resolve(undefined),
            );
          };
          process.once("SIGINT", () => stop("SIGINT"));
          process.once("SIGTERM", () => stop("SIGTERM"));
        });
        // Like a Kubernetes controller that loses its lease: exit, and come back (Swarm restarts the task) as a standby.
        if (reasonLost !== undefined) throw new CliError(EXIT.notReady, `lease lost: ${reasonLost}`);
      },
    );

  program
    .command("reconcile")
    .description(
      "converge once from a shell (--once): apply the spec (a file, or the store), follow the rollout, exit 0 when every cache is Ready; refused while a controller holds this owner id's lease",
    )
    .requiredOption("--once", "one pass, then exit (the only mode; `run` is the loop)")
    .option("-f, --file <path>", "CacheSpec file or directory (default: the in-swarm store of this owner id)")
    .addOption(new Option("--timeout <duration>", "give up after this long (e.g. 90s, 5m)").argParser(parseTimeout).default(300_000, "5m"))
    .option("--allow-empty", "accept a spec with no caches and tear every owned cache down", false)
    .option("--id <owner>", "owner id (see run --help)", "dtrcache")
    .addOption(logLevel("warn"))
    .addOption(logFormat())
    .addHelpText("after", EXIT_HELP)
    .action(async (opts: { file?: string; timeout: number; allowEmpty: boolean; id: string; logLevel: LogLevel; logFormat?: LogFormat }) => {
      if (opts.file !== undefined) await validateSpec(opts.file);
      const logger = createLogger(opts.logLevel, undefined, opts.logFormat);
      // Take the lease for the pass, so a running controller of this id and this pass never fight.
      const swarm = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(process.env["DOCKER_HOST"], process.env)));
      const elector = new LeaderElector({ swarm, owner: opts.id, logger: logger.child({ part: "lease" }) });
      await elector.acquireOnce();
      elector.keepRenewing((reason) => process.stderr.write(`lease lost during the pass: ${reason}\n`));
      const runtime = await startRuntime({
        ...(opts.file !== undefined ? { specPath: opts.file } : { store: true }),
        logger,
        allowEmpty: opts.allowEmpty,
        id: opts.id,
      }).catch(async (error: unknown) => {
        await elector.release();
        throw error;
      });
      try {
        // One full pass in hand first: it creates what is missing and tears down, in order, every
        // owned cache that left the spec (waiting for its tasks to go); then follow the rollout.
        for (const report of await runtime.controller.reconcileOnce()) {
          if (report.error !== undefined) process.stderr.write(`${report.cache}: ${report.mode}: ${report.error}\n`);
          else if (report.mode === "teardown") process.stderr.write(`${report.cache}: removed (it left the spec)\n`);
        }
        const outcome = await waitForConvergence(
          () => runtime.snapshot(),
          opts.timeout,
          (line) => process.stderr.write(`${line}\n`),
        );
        process.stdout.write(`${formatStatusTable(runtime.snapshot())}\n`);
        if (!outcome.converged) throw new CliError(EXIT.notReady, `not Ready after ${Math.round(opts.timeout / 1000)} s: ${outcome.reason}`);
      } finally {
        await runtime.stop();
        await elector.release();
      }
    });

  program
    .command("plan")
    .description(
      "dry run: what converging on this spec would do in the swarm (field by field, with the names apply creates) and in DTR (read live); warns about objects another owner id holds; writes nothing",
    )
    .requiredOption("-f, --file <path>", "CacheSpec file or directory")
    .option("--allow-empty", "plan the teardown of every owned cache when the spec has none", false)
    .option("--id <owner>", "owner id (see run --help)", "dtrcache")
    .addHelpText("after", EXIT_HELP)
    .action(async (opts: { file: string; id: string; allowEmpty: boolean }) => {
      const loaded = await loadCacheSpec(opts.file);
      if (!loaded.ok) throw new CliError(EXIT.invalid, `invalid spec, nothing changed:\n${loaded.issues.map(formatIssue).join("\n")}`);
      const swarm = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(process.env["DOCKER_HOST"], process.env)));
      process.stdout.write(`${await serverDryRun(swarm, opts.id, loaded.spec, { allowEmpty: opts.allowEmpty })}\n`);
    });

  registerStoreCommands(program, EXIT_HELP);

  program
    .command("validate")
    .description("check a spec file or directory (syntax, fields, files, references); needs no engine")
    .requiredOption("-f, --file <path>", "CacheSpec file or directory")
    .addHelpText("after", EXIT_HELP)
    .action(async (opts: { file: string }) => {
      const result = await loadCacheSpec(opts.file);
      if (!result.ok) throw new CliError(EXIT.invalid, `invalid spec:\n${result.issues.map(formatIssue).join("\n")}`);
      process.stdout.write(
        `${opts.file}: valid (${result.spec.dtrs.length} DTR, ${result.spec.caches.length} cache${result.spec.caches.length === 1 ? "" : "s"}: ${result.spec.caches.map((c) => c.name).join(", ") || "none"})\n`,
      );
    });

  program
    .command("status")
    .description("show the caches' status from a running controller")
    .argument("[name]", "one cache")
    .option("--url <url>", "status endpoint (default: $DTRCACHE_STATUS_URL or http://127.0.0.1:9090)")
    .option("--token-file <path>", "bearer token file (default: $DTRCACHE_STATUS_TOKEN)")
    .addOption(new Option("-o, --output <format>", "output format").choices(["table", "json", "yaml"]).default("table"))
    .option("-w, --watch", "keep asking; print the status again whenever it changes (Ctrl-C stops)", false)
    .addOption(new Option("--interval <duration>", "how often --watch asks (e.g. 2s)").argParser(parseTimeout).default(2_000, "2s"))
    .addHelpText("after", EXIT_HELP)
    .action(
      async (name: string | undefined, opts: { url?: string; tokenFile?: string; output: "table" | "json" | "yaml"; watch: boolean; interval: number }) => {
        const base = opts.url ?? process.env["DTRCACHE_STATUS_URL"] ?? DEFAULT_STATUS_URL;
        const token = readToken(opts.tokenFile, process.env["DTRCACHE_STATUS_TOKEN"]);
        let lastProblem: string | undefined;
        const render = async (): Promise<string> => {
          let status = await getStatusJson<RuntimeSnapshot>(base, "/status", token);
          // The controller knows a stored revision only once it has loaded it: read the store's
          // heads too (when this shell reaches the engine), so a just-applied revision counts.
          if (status.controllerId !== "" && status.caches.some((c) => c.spec?.storedGeneration !== undefined)) {
            const heads = await storedCacheGenerations(status.controllerId);
            if (heads) status = withStoreHeads(status, heads);
          }
          if (name !== undefined) {
            const one = status.caches.filter((c) => c.name === name);
            if (one.length === 0)
              throw new CliError(EXIT.invalid, `no cache named "${name}" (known: ${status.caches.map((c) => c.name).join(", ") || "none"})`);
            status = { ...status, caches: one };
          }
          lastProblem = statusProblem(status);
          if (opts.output === "json") return JSON.stringify(name ? status.caches[0] : status, null, 2);
          if (opts.output === "yaml") return stringify(name ? status.caches[0] : status).trimEnd();
          return [formatStatusTable(status), ...pendingLines(status)].join("\n");
        };
        if (!opts.watch) {
          process.stdout.write(`${await render()}\n`);
          // like kubectl wait / docker's health: scripts can tell "up and Ready" from "not yet"
          if (lastProblem !== undefined) throw new CliError(EXIT.notReady, lastProblem);
          return;
        }
        const stop = new AbortController();
        const onSignal = (): void => stop.abort();
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        try {
          await watchView(render, { intervalMs: opts.interval, signal: stop.signal, write: (text) => void process.stdout.write(text) });
        } finally {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
        }
      },
    );

  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram().exitOverride();
  for (const command of program.commands) command.exitOverride();
  try {
    await program.parseAsync([...argv]);
    return EXIT.ok;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("commander.")) {
      const exitCode = (error as { exitCode?: number }).exitCode ?? EXIT.invalid;
      return code === "commander.helpDisplayed" || code === "commander.version" || code === "commander.help"
        ? EXIT.ok
        : exitCode === 0
          ? EXIT.ok
          : EXIT.invalid;
    }
    const failure = toCliError(error);
    process.stderr.write(`dtrcache: ${failure.message}\n`);
    return failure.exitCode;
  }
}

function isEntryPoint(): boolean {
  const invoked = process.argv[1];
  if (!invoked) return false;
  try {
    // npm's bin shims are symlinks: compare real paths.
    return realpathSync(invoked) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

// Run only as the entry point (tests import buildProgram/main).
if (isEntryPoint()) {
  void main(process.argv).then((code) => process.exit(code));
}
