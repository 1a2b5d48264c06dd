// `npm run demo`: the one-command quickstart. On a machine of the project's kind (Debian, root,
// no registry reachable) it installs the system packages it needs, brings up a private one-node
// swarm, a real docker-registry holding a sample image behind the DTR emulator, builds the
// cache-server image offline, and runs the controller (the same runtime as `dtrcache run`) on a
// CacheSpec written to a work directory. It shows the cache coming up, pulls the sample image with
// the docker CLI as a cache-enabled user, shows where the bytes came from, and then keeps watching
// the spec file so that edits are applied live. Ctrl-C (or SIGTERM) tears everything down; a
// second Ctrl-C stops waiting for an orderly teardown.
//
//   node test/dist/demo/main.js [--exit-after-pull] [--file-mode]     (or DEMO_EXIT_AFTER_PULL=1)
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { conditionOf, formatStatusTable, startRuntime, type ControllerStatus, type Runtime } from "@dtrcache/controller";
import { buildServiceImage, cleanupStale, dockerCli, ensurePackages, repoRoot, startSwarm, type SwarmHandle } from "../harness/index.js";
import { blobTraffic, dockerAs, readCacheCounters, sampleBlobs, startDtrStack, type CacheCounters, type DtrStack } from "../support/dtr-stack.js";
import { describeChanges } from "./progress.js";

const CACHE_NAME = "demo-cache";
const CACHE_PORT = 5000;
/** The cache's debug listener (/metrics, read for the counters the demo prints); not 5001, the port docs/demo.md suggests moving the cache to. */
const CACHE_DEBUG_PORT = 5051;
const READY_TIMEOUT_MS = 180_000;
const ANSWER_TIMEOUT_MS = 60_000;
const TEARDOWN_STEP_TIMEOUT_MS = 30_000;
const POLL_MS = 250;

const USAGE = `usage: npm run demo [-- --exit-after-pull] [-- --file-mode]

Brings up a private swarm, a DTR emulator with a sample image and users, and the controller with
an example CacheSpec stored in the swarm (\`dtrcache apply -f\`); pulls the sample image through the
cache as alice; then applies every change you store with \`dtrcache apply -f FILE\` or
\`dtrcache edit NAME\` (the exact commands are printed). Ctrl-C tears everything down.

  --exit-after-pull   tear down and exit right after the pull (CI); same as DEMO_EXIT_AFTER_PULL=1
  --file-mode         the process mode instead: the controller watches the spec file itself and
                      applies each saved edit (no store); same as DEMO_FILE_MODE=1
  --help              this text

Exit codes: 0 done (also after Ctrl-C with a clean teardown), 1 failed, 2 bad arguments, 130 forced.`;

/** A demo failure with a stable code; the message says what to do. */
class DemoError extends Error {
  constructor(
    readonly code: "NOT_BUILT" | "READY_TIMEOUT" | "NOT_ANSWERING" | "PULL_MISMATCH" | "TEARDOWN_FAILED" | "CLI_FAILED",
    message: string,
  ) {
    super(message);
    this.name = "DemoError";
  }
}

/** Thrown out of a wait when Ctrl-C / SIGTERM arrived; the teardown follows. */
class Interrupted extends Error {
  readonly code = "INTERRUPTED";
}

const started = Date.now();
/** Set by a second signal: the process exits 130 however the teardown ends. */
let forced = false;
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const say = (message: string): void => {
  process.stdout.write(`[${elapsed().padStart(6)}] ${message}\n`);
};
const indent = (text: string): string =>
  text
    .split("\n")
    .map((line) => `    ${line}`)
    .join("\n");

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Interrupted("interrupted"));
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new Interrupted("interrupted"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

const checkpoint = (signal: AbortSignal): void => {
  if (signal.aborted) throw new Interrupted("interrupted");
};

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

/** Prints status changes until `done` says so, or fails with `onTimeout` after `timeoutMs`. */
async function watch(
  runtime: Runtime,
  signal: AbortSignal,
  previous: { status?: ControllerStatus },
  done: (s: ControllerStatus) => Promise<boolean> | boolean,
  timeoutMs: number,
  onTimeout: (s: ControllerStatus) => Error,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = runtime.controller.status();
    for (const line of describeChanges(previous.status, status)) say(line);
    previous.status = status;
    if (await done(status)) return;
    if (Date.now() > deadline) throw onTimeout(status);
    await sleep(POLL_MS, signal);
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    return response.headers.get("docker-distribution-api-version") === "registry/2.0";
  } catch {
    return false;
  }
}

/**
 * SIGKILLs every process this one started, directly or not (an image build, a docker CLI call in
 * flight), by pid: on a forced exit nothing started by the demo may outlive it. Found by walking
 * the parent links in /proc, so only our own descendants are ever signalled.
 */
async function killDescendants(): Promise<void> {
  const parents = new Map<number, number>();
  for (const entry of await readdir("/proc").catch(() => [])) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (Number.isInteger(ppid)) parents.set(Number(entry), ppid);
  }
  const mine = new Set<number>([process.pid]);
  // parents can be listed after their children: repeat until nothing new is found (bounded by the table size)
  for (let grew = true, rounds = 0; grew && rounds < parents.size; rounds++) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (!mine.has(pid) && mine.has(ppid)) {
        mine.add(pid);
        grew = true;
      }
    }
  }
  mine.delete(process.pid);
  for (const pid of mine) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

interface Cleanup {
  readonly what: string;
  readonly run: () => Promise<void>;
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        "exit-after-pull": { type: "boolean", default: false },
        "file-mode": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      strict: true,
    }).values;
  } catch (error) {
    process.stderr.write(`demo: ${error instanceof Error ? error.message : "bad arguments"}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const exitAfterPull = args["exit-after-pull"] || process.env.DEMO_EXIT_AFTER_PULL === "1";
  const fileMode = args["file-mode"] || process.env.DEMO_FILE_MODE === "1";

  const abort = new AbortController();
  const cleanups: Cleanup[] = [];
  let swarm: SwarmHandle | undefined;
  let signals = 0;
  const onSignal = (name: NodeJS.Signals): void => {
    signals += 1;
    if (signals === 1) {
      say(`${name}: tearing everything down (press Ctrl-C again to force)`);
      abort.abort();
      return;
    }
    // Forced: no orderly stop of the controller; the swarm's processes are SIGKILLed (bounded),
    // and anything still left is reaped by the next run's cleanup (its owner, this process, is dead).
    // The exit code is 130 whichever finishes first, this or the orderly teardown.
    if (signals > 2) return;
    forced = true;
    say(`${name} again: forcing; run \`node scripts/harness-down.mjs\` if anything is left`);
    const hardStop = swarm ? swarm.stop().catch(() => undefined) : Promise.resolve();
    void Promise.race([hardStop, new Promise((resolve) => setTimeout(resolve, 10_000))])
      .then(() => killDescendants())
      .finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  let failure: unknown;
  try {
    await demo(abort.signal, cleanups, { exitAfterPull, fileMode }, (s) => {
      swarm = s;
    });
  } catch (error) {
    // after a signal, a step cut short by the teardown (a build whose engine is gone) is no failure
    if (!(error instanceof Interrupted) && !abort.signal.aborted) failure = error;
  }
  if (failure !== undefined) {
    const code = typeof failure === "object" && failure !== null && "code" in failure ? ` [${String(failure.code)}]` : "";
    say(`error${code}: ${failure instanceof Error ? failure.message : String(failure)}`);
  }

  say("tearing down: controller, DTR emulator, registry, swarm, work directory");
  const problems: string[] = [];
  for (const cleanup of cleanups.reverse()) {
    try {
      await Promise.race([
        cleanup.run(),
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error(`did not finish within ${TEARDOWN_STEP_TIMEOUT_MS / 1000} s`)), TEARDOWN_STEP_TIMEOUT_MS).unref(),
        ),
      ]);
    } catch (error) {
      problems.push(`${cleanup.what}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (problems.length > 0) {
    say(`teardown problems [TEARDOWN_FAILED]:\n${indent(problems.join("\n"))}\n    run \`node scripts/harness-down.mjs\` to remove what is left`);
    return 1;
  }
  say(`everything removed (total ${elapsed()})`);
  return failure === undefined ? 0 : 1;
}

/**
 * `dtrcache ARGS` as an operator runs it against the demo's swarm (the checkout's CLI on this
 * Node); resolves to its output, rejects with it on a non-zero exit.
 */
function dtrcache(dockerHost: string, args: readonly string[]): Promise<string> {
  const cli = join(repoRoot(), "controller", "dist", "cli", "main.js");
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, DOCKER_HOST: dockerHost }, timeout: 60_000 }, (error, stdout, stderr) => {
      const text = `${stdout}${stderr}`.trim();
      if (error) reject(new DemoError("CLI_FAILED", `dtrcache ${args.join(" ")} failed: ${text || error.message}`));
      else resolve(text);
    });
  });
}

async function demo(
  signal: AbortSignal,
  cleanups: Cleanup[],
  mode: { exitAfterPull: boolean; fileMode: boolean },
  onSwarm: (swarm: SwarmHandle) => void,
): Promise<void> {
  const { exitAfterPull, fileMode } = mode;
  say("checking system packages (docker.io, docker-registry, skopeo, ...)");
  const installed = await ensurePackages();
  if (installed.length > 0) say(`installed ${installed.join(", ")}`);
  const stale = await cleanupStale();
  if (stale.instances + stale.processes > 0) say(`removed leftovers of an earlier run: ${JSON.stringify(stale)}`);
  checkpoint(signal);

  say("starting a private one-node swarm (its own dockerd in a network namespace; your Docker is not touched)");
  const swarm = await startSwarm({ nodes: 1 });
  onSwarm(swarm);
  cleanups.push({ what: `swarm ${swarm.id}`, run: () => swarm.stop() });
  const node = swarm.manager;
  const dockerHost = node.dockerHost;
  say(`swarm ${swarm.id} up: node ${node.hostname} at ${node.ip}; poke it with: docker -H ${dockerHost} service ls`);
  checkpoint(signal);

  say("building the cache-server image offline (FROM scratch, the project's own Node 24 binary)");
  const image = await buildServiceImage("cache-server", dockerHost);
  if (!image) throw new DemoError("NOT_BUILT", "cache-server is not compiled: run `npm run build` first (`npm run demo` does it)");
  say(`built ${image}`);
  checkpoint(signal);

  const dir = join(swarm.workDir, "demo");
  await mkdir(dir, { recursive: true });
  say("starting docker-registry with a sample image, and the DTR emulator in front of it (users admin, alice, bob)");
  const stack: DtrStack = await startDtrStack({ workDir: dir, hostIp: swarm.hostIp, dockerHost });
  cleanups.push({ what: "DTR emulator and registry", run: () => stack.stop() });
  say(`DTR emulator at ${stack.emulator.url}; sample image ${stack.sampleImage.ref} (${stack.sampleImage.digest})`);
  checkpoint(signal);

  const cacheUrl = `http://${node.ip}:${CACHE_PORT}`;
  const debugUrl = `http://${node.ip}:${CACHE_DEBUG_PORT}`;
  const specPath = await stack.writeSpec({
    cacheName: CACHE_NAME,
    nodeHostname: node.hostname,
    port: CACHE_PORT,
    debugPort: CACHE_DEBUG_PORT,
    externalURL: cacheUrl,
    users: ["alice"],
    image,
    passwordRef: "file",
    path: join(dir, "cachespec.yaml"),
  });
  const logFile = join(dir, "controller.log");
  say(`CacheSpec written: ${specPath}`);
  const owner = `demo-${swarm.id}`;
  // The operator's command for a store edit, printed as they would type it (scripts/dtrcache runs
  // the checkout's CLI on the project's Node 24).
  const applyCommand = `DOCKER_HOST=${dockerHost} ${join(repoRoot(), "scripts", "dtrcache")} apply -f ${specPath} --id ${owner}`;
  if (fileMode) {
    say(`  -> edit this file while the demo runs; the controller applies each change (controller log: ${logFile})`);
  } else {
    say(`storing it in the swarm: dtrcache apply -f ${specPath} --id ${owner}`);
    say(indent(await dtrcache(dockerHost, ["apply", "-f", specPath, "--id", owner])));
    say(`  -> edit this file, then store the edit (the controller applies what the store holds; controller log: ${logFile}):`);
    say(`     ${applyCommand}`);
    say(`     or edit it in place: DOCKER_HOST=${dockerHost} ${join(repoRoot(), "scripts", "dtrcache")} edit ${CACHE_NAME} --id ${owner}`);
  }
  const logger = pino({ level: "info" }, pino.destination({ dest: logFile, sync: true }));
  const runtime = await startRuntime({
    ...(fileMode ? { specPath } : { store: true }),
    dockerHost,
    env: {},
    logger,
    listen: { host: "127.0.0.1", port: 0 },
    id: owner,
  });
  cleanups.push({ what: "controller", run: () => runtime.stop() });
  say(`controller running; status endpoint ${runtime.statusUrl ?? "(none)"}/status`);

  const seen: { status?: ControllerStatus } = {};
  const cacheOf = (s: ControllerStatus) => s.caches.find((c) => c.name === CACHE_NAME);
  await watch(
    runtime,
    signal,
    seen,
    (s) => conditionOf(cacheOf(s), "Ready")?.status === "True" && conditionOf(cacheOf(s), "DtrSynced")?.status === "True",
    READY_TIMEOUT_MS,
    (s) =>
      new DemoError(
        "READY_TIMEOUT",
        `the cache was not Ready and synced with DTR within ${READY_TIMEOUT_MS / 1000} s:\n${indent(formatStatusTable(runtime.snapshot()))}\n    controller log: ${logFile}${s.spec.errors.length ? `\n    spec errors: ${s.spec.errors.join("; ")}` : ""}`,
      ),
  );
  const deadline = Date.now() + ANSWER_TIMEOUT_MS;
  while (!(await answers(cacheUrl))) {
    if (Date.now() > deadline)
      throw new DemoError(
        "NOT_ANSWERING",
        `the cache is Ready in Swarm but ${cacheUrl}/v2/ did not answer within ${ANSWER_TIMEOUT_MS / 1000} s; see docker -H ${dockerHost} service logs ${CACHE_NAME}`,
      );
    await sleep(POLL_MS, signal);
  }
  say(`cache answering at ${cacheUrl}`);

  // The pull: alice's setting names the cache, so DTR redirects her blob requests to it.
  const docker = await dockerCli();
  const alice = dockerAs({ docker, dockerHost, configDir: join(dir, "docker-alice"), registryHostPort: stack.emulator.hostPort, user: stack.users.alice });
  const blobs = await sampleBlobs(stack);
  const ref = stack.sampleImage.ref;
  const pullOnce = async (label: string): Promise<{ before: CacheCounters; after: CacheCounters }> => {
    stack.emulator.clearRequestLog();
    const before = await readCacheCounters(debugUrl);
    say(`${label}: docker -H ${dockerHost} pull ${ref} (logged in as alice)`);
    await alice.pull(ref);
    const digests = await alice.repoDigests(ref);
    const expected = `${stack.emulator.hostPort}/${stack.sampleImage.repository}@${stack.sampleImage.digest}`;
    if (!digests.includes(expected)) throw new DemoError("PULL_MISMATCH", `pulled image has digests ${JSON.stringify(digests)}, expected ${expected}`);
    return { before, after: await readCacheCounters(debugUrl) };
  };
  await alice.login();
  checkpoint(signal);
  const first = await pullOnce("first pull");
  const traffic = blobTraffic(stack.emulator.requestLog(), stack.sampleImage.repository);
  const fills = traffic.signed.filter((s) => s.method === "GET");
  say("where the bytes came from (first pull):");
  say(
    `    DTR: ${traffic.redirected.length} blob request(s) of alice answered 307 -> ${cacheUrl} (signed, expiring URLs); ${traffic.servedDirect.length} served directly`,
  );
  say(
    `    cache: ${first.after.blobMisses - first.before.blobMisses} miss(es), ${first.after.blobHits - first.before.blobHits} hit(s); fetched ${mib(first.after.bytesFetched - first.before.bytesFetched)} from DTR in ${fills.length} signed fill(s), served ${mib(first.after.bytesServed - first.before.bytesServed)} to docker`,
  );
  checkpoint(signal);
  await alice.removeImage(ref);
  const second = await pullOnce("second pull after docker rmi");
  say("where the bytes came from (second pull):");
  say(
    `    cache: ${second.after.blobHits - second.before.blobHits} hit(s), ${second.after.blobMisses - second.before.blobMisses} miss(es); fetched ${mib(second.after.bytesFetched - second.before.bytesFetched)} from DTR, served ${mib(second.after.bytesServed - second.before.bytesServed)} from its store`,
  );
  say(`image digest ${stack.sampleImage.digest} equals the backend registry's; ${blobs.length} blobs, ${mib(blobs.reduce((n, b) => n + b.size, 0))}`);
  say(`status (dtrcache status):\n${indent(formatStatusTable(runtime.snapshot()))}`);
  say(`pulled through the cache (${elapsed()} after start)`);
  if (exitAfterPull) return;

  if (fileMode) say(`watching ${specPath}: edit it (blobTTL: 1h, users: [alice, bob], ...) and watch the change being applied; Ctrl-C tears everything down`);
  else
    say(
      `waiting for store edits: edit ${specPath} (blobTTL: 1h, users: [alice, bob], ...), run \`${applyCommand}\` and watch the change being applied; Ctrl-C tears everything down`,
    );
  let lastApplied = cacheOf(runtime.controller.status())?.observedGeneration ?? "";
  // Runs until Ctrl-C / SIGTERM; each look is bounded and sleeps between looks.
  await watch(
    runtime,
    signal,
    seen,
    (s) => {
      const cache = cacheOf(s);
      if (
        cache &&
        cache.observedGeneration !== lastApplied &&
        cache.observedGeneration === cache.generation &&
        conditionOf(cache, "Ready")?.status === "True"
      ) {
        lastApplied = cache.observedGeneration;
        say(`${CACHE_NAME}: change applied; status:\n${indent(formatStatusTable(runtime.snapshot()))}`);
      }
      return false;
    },
    Number.POSITIVE_INFINITY,
    () => new Interrupted("unreachable"),
  );
}

main().then(
  (code) => process.exit(forced ? 130 : code),
  (error: unknown) => {
    process.stderr.write(`demo: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
