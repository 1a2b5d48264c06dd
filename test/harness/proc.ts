import { execFile, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { HarnessError } from "./errors.js";

export interface RunResult {
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  timeoutMs?: number;
  /** Return instead of throwing when the command exits non-zero. */
  allowFailure?: boolean;
}

/** Runs a program (no shell) and collects its output; a non-zero exit is a COMMAND_FAILED error. */
export async function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult & { code: number }> {
  return await new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: options.env ?? process.env, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, encoding: "utf8" },
      (error, stdout, stderr) => {
        if (error && !options.allowFailure) {
          const detail = stderr.trim().split("\n").slice(-5).join("\n");
          reject(new HarnessError("COMMAND_FAILED", `${file} ${args.join(" ")} failed: ${detail || error.message}`, { cause: error }));
          return;
        }
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ stdout, stderr, code });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Pipes `from`'s stdout into `to`'s stdin (e.g. docker save | docker load) without a shell. */
export async function pipe(
  from: { file: string; args: readonly string[] },
  to: { file: string; args: readonly string[] },
  env?: NodeJS.ProcessEnv,
): Promise<void> {
  const source = spawn(from.file, from.args, { env: env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
  const sink = spawn(to.file, to.args, { env: env ?? process.env, stdio: ["pipe", "ignore", "pipe"] });
  source.stdout.pipe(sink.stdin);
  const errors: string[] = [];
  source.stderr.on("data", (d: Buffer) => errors.push(d.toString()));
  sink.stderr.on("data", (d: Buffer) => errors.push(d.toString()));
  const exit = (p: ReturnType<typeof spawn>): Promise<number> => new Promise((resolve) => p.on("close", (code) => resolve(code ?? 1)));
  const [a, b] = await Promise.all([exit(source), exit(sink)]);
  if (a !== 0 || b !== 0) {
    throw new HarnessError("COMMAND_FAILED", `${from.file} ${from.args.join(" ")} | ${to.file} ${to.args.join(" ")} failed: ${errors.join("").trim()}`);
  }
}

/** Polls `check` until it returns a value other than undefined, or fails with TIMEOUT after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      // the harness's own errors (a process that exited, ...) will not heal by waiting
      if (error instanceof HarnessError) throw error;
      last = error;
    }
    if (Date.now() >= deadline) {
      const reason = last instanceof Error ? `: ${last.message}` : "";
      throw new HarnessError("TIMEOUT", `timed out after ${timeoutMs} ms waiting for ${what}${reason}`, { cause: last });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** True while a process with this pid exists (signal 0 probes without signalling). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * The kernel's start time of a process (field 22 of /proc/PID/stat, in clock ticks since boot).
 * Recorded next to every pid we keep so that a reused pid is never mistaken for ours.
 */
export async function processStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // comm (field 2) may contain spaces and parentheses: split after its closing parenthesis.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19];
  } catch {
    return undefined;
  }
}

export async function processName(pid: number): Promise<string | undefined> {
  try {
    return (await readFile(`/proc/${pid}/comm`, "utf8")).trim();
  } catch {
    return undefined;
  }
}

export async function tail(file: string, lines = 20): Promise<string> {
  try {
    return (await readFile(file, "utf8")).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}
