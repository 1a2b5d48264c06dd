// The quickstart as a user runs it: `node test/dist/demo/main.js` in a child process (what
// `npm run demo` runs after building), waited on until it says "pulled through the cache", then
// interrupted with SIGINT like Ctrl-C in a terminal. Afterwards nothing of that run may be left:
// found through the harness's own records (the swarm instance and the processes the demo's
// process owned), which the demo writes before it creates anything.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupStale, repoRoot } from "../harness/index.js";
import { listRecords, type InstanceRecord } from "../harness/instance.js";
import { run } from "../harness/proc.js";
import { listProcessRecords, sameProcess, type ProcessRecord } from "../harness/tracked.js";

const MAIN = join(repoRoot(), "test", "dist", "demo", "main.js");
const PULL_TIMEOUT_MS = 240_000;
const EXIT_TIMEOUT_MS = 90_000;

let child: ChildProcess | undefined;
const output: string[] = [];

/** Live processes whose command line mentions one of `needles` (zombies do not count). */
async function processesMentioning(needles: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir("/proc")).filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).replaceAll("\0", " ");
      if (needles.some((n) => cmdline.includes(n))) found.push(`${pid} ${cmdline.slice(0, 160)}`);
    } catch {
      // ended while we looked
    }
  }
  return found;
}

/** Everything one demo run could leave behind; all empty / false means clean. */
async function leftovers(instances: readonly InstanceRecord[], processes: readonly ProcessRecord[], emulatorUrl?: string): Promise<Record<string, unknown>> {
  const netns = (await run("ip", ["netns", "list"])).stdout.split("\n").filter((line) => instances.some((i) => line.startsWith(`dh-${i.id}-`)));
  const alive: string[] = [];
  for (const p of processes) if (await sameProcess(p.pid, p.start)) alive.push(`${p.pid} ${p.kind} ${p.name}`);
  const emulatorAnswers =
    emulatorUrl !== undefined &&
    (await fetch(`${emulatorUrl}/_ping`, { signal: AbortSignal.timeout(2_000) }).then(
      () => true,
      () => false,
    ));
  return {
    netns,
    recordedProcessesAlive: alive,
    processesInDirs: await processesMentioning(instances.flatMap((i) => [i.runDir, i.stateDir])),
    dirs: instances.flatMap((i) => [i.runDir, i.stateDir, join("/run/dtrcache-h/instances", i.id)]).filter((d) => existsSync(d)),
    hostLinks: instances.map((i) => i.hostLink).filter((l) => existsSync(`/sys/class/net/${l}`)),
    cgroups: instances.filter((i) => existsSync(`/sys/fs/cgroup/pids/${i.cgroup}`) || existsSync(`/sys/fs/cgroup/${i.cgroup}`)).map((i) => i.cgroup),
    emulatorAnswers,
  };
}

function waitForLine(pattern: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      clearInterval(poll);
      reject(new Error(`no line matching ${pattern} within ${timeoutMs / 1000} s; output so far:\n${output.join("\n")}`));
    }, timeoutMs);
    const poll = setInterval(() => {
      const line = output.find((l) => pattern.test(l));
      if (line !== undefined) {
        clearTimeout(timer);
        clearInterval(poll);
        resolve(line);
      } else if (child?.exitCode !== null) {
        clearTimeout(timer);
        clearInterval(poll);
        reject(new Error(`the demo exited (${String(child?.exitCode)}) before ${pattern}; output:\n${output.join("\n")}`));
      }
    }, 200);
  });
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Starts the demo as a child process the way a user's shell would, collecting its output lines. */
function startDemo(): { pid: number; exited: Promise<Exit> } {
  output.length = 0;
  const env = { ...process.env };
  // the demo brings up its own engine and must not be pointed at the suite's; it must wait for the signal
  delete env.DOCKER_HOST;
  delete env.DEMO_EXIT_AFTER_PULL;
  const proc = spawn(process.execPath, [MAIN], { env, stdio: ["ignore", "pipe", "pipe"] });
  child = proc;
  for (const stream of [proc.stdout, proc.stderr]) createInterface({ input: stream }).on("line", (line) => output.push(line));
  const exited = new Promise<Exit>((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  return { pid: proc.pid ?? 0, exited };
}

function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s:\n${output.slice(-20).join("\n")}`)), ms)),
  ]);
}

afterAll(async () => {
  // A failed run must not leave the demo's swarm behind: kill it, then reap what its death orphaned.
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill("SIGKILL");
    await new Promise((resolve) => child?.once("exit", resolve));
  }
  await cleanupStale();
});

describe("npm run demo", () => {
  it("reaches 'pulled through the cache', applies an edit of the printed spec file, and on SIGINT exits 0 leaving no process, namespace, container or directory behind", async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npx tsc -b test\` first`);
    const started = Date.now();
    const { pid, exited } = startDemo();

    await waitForLine(/pulled through the cache/, PULL_TIMEOUT_MS);
    const pulledAfter = (Date.now() - started) / 1000;
    const emulatorUrl = /DTR emulator at (http:\/\/\S+);/.exec(output.join("\n"))?.[1] ?? "";
    expect(emulatorUrl).not.toBe("");
    // The demo's own records, taken while it runs: what it created must be gone after the signal.
    const instances = (await listRecords()).filter((r) => r.ownerPid === pid);
    const processes = (await listProcessRecords()).filter((r) => r.ownerPid === pid);
    expect(instances).toHaveLength(1);
    expect(processes.map((p) => p.kind)).toContain("registry");
    expect((await leftovers(instances, processes, emulatorUrl)).emulatorAnswers).toBe(true);
    // what the demo showed along the way
    const text = output.join("\n");
    expect(text).toMatch(/edit this file/);
    expect(text).toMatch(/Ready=True/);
    expect(text).toMatch(/answered 307 ->/);
    expect(text).toMatch(/cache: \d+ hit\(s\), 0 miss\(es\); fetched 0\.00 MiB from DTR/);
    expect(text).toMatch(/NAME\s+READY\s+TASKS/);

    // The spec went into the swarm's store with `dtrcache apply` (the demo printed its answer).
    expect(text).toMatch(/storing it in the swarm: dtrcache apply -f/);
    expect(text).toMatch(/contentcache\/\S+ created/);
    // the user edits the printed spec file (bob joins the users) and stores the edit with the
    // command the demo printed, verbatim; the demo shows it being applied
    const specPath = /CacheSpec written: (\S+)/.exec(text)?.[1] ?? "";
    const spec = await readFile(specPath, "utf8");
    expect(spec).toMatch(/^(\s+)- alice$/m);
    await writeFile(`${specPath}.tmp`, spec.replace(/^(\s+)- alice$/m, "$1- alice\n$1- bob"));
    await rename(`${specPath}.tmp`, specPath);
    const applyCommand = /\s(DOCKER_HOST=\S+ \S+\/scripts\/dtrcache apply -f \S+ --id \S+)$/m.exec(text)?.[1] ?? "";
    expect(applyCommand).not.toBe("");
    const applied = await run("sh", ["-c", applyCommand]);
    expect(applied.stdout).toMatch(/contentcache\/\S+ configured/);
    await waitForLine(/DTR users alice:assigned, bob:assigned/, 60_000);
    await waitForLine(/change applied/, 60_000);

    child?.kill("SIGINT");
    const exit = await bounded(exited, EXIT_TIMEOUT_MS, "the demo did not exit after SIGINT");
    console.log(
      `demo: "pulled through the cache" after ${pulledAfter.toFixed(1)} s; exited ${((Date.now() - started) / 1000).toFixed(1)} s after start\n${output.join("\n")}`,
    );
    expect(exit).toEqual({ code: 0, signal: null });
    expect(output.join("\n")).toMatch(/everything removed/);
    expect(await leftovers(instances, processes, emulatorUrl)).toEqual({
      netns: [],
      recordedProcessesAlive: [],
      processesInDirs: [],
      dirs: [],
      hostLinks: [],
      cgroups: [],
      emulatorAnswers: false,
    });
  });

  it("forces its way out on a second SIGINT (exit 130), and the next run's cleanup leaves nothing of it", async () => {
    const { pid, exited } = startDemo();
    await waitForLine(/swarm [0-9a-f]+ up/, PULL_TIMEOUT_MS);
    const instances = (await listRecords()).filter((r) => r.ownerPid === pid);
    expect(instances).toHaveLength(1);
    child?.kill("SIGINT");
    await waitForLine(/tearing everything down/, 10_000);
    child?.kill("SIGINT");
    const exit = await bounded(exited, EXIT_TIMEOUT_MS, "the demo did not exit after a second SIGINT");
    console.log(`demo, SIGINT twice:\n${output.join("\n")}`);
    expect(output.join("\n")).toMatch(/forcing/);
    expect(exit).toEqual({ code: 130, signal: null });
    await cleanupStale();
    const left = await leftovers(instances, []);
    expect(left).toEqual({ netns: [], recordedProcessesAlive: [], processesInDirs: [], dirs: [], hostLinks: [], cgroups: [], emulatorAnswers: false });
  });
});
