import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { HarnessError } from "./errors.js";
import { run } from "./proc.js";

/** The repository root, found from this file (works from test/harness and from test/dist/harness). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++) {
    if (existsSync(join(dir, "deploy", "offline", "build.mjs"))) return dir;
    dir = dirname(dir);
  }
  throw new HarnessError("ENTRY_MISSING", "deploy/offline/build.mjs not found above the harness");
}

export function buildScript(): string {
  return join(repoRoot(), "deploy", "offline", "build.mjs");
}

export type ServiceName = "cache-server" | "controller" | "test-http";

// One implementation of the image build lives in deploy/offline/build.mjs (plain Node, usable from
// the command line and the demo); the harness runs it as a child process.
async function runBuild(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return await run(process.execPath, [buildScript(), ...args], { allowFailure: true, timeoutMs: 300_000 });
}

export interface BuildOfflineImageOptions {
  dockerHost: string;
  tag: string;
  /** A JavaScript entry file; it is bundled with its dependencies into /app/main.mjs. */
  entry: string;
  /** Extra files for the image: absolute path in the image → file content. */
  extraFiles?: Record<string, string>;
}

/** Builds a FROM-scratch image (node + libraries + the bundled entry, /start.sh runs it) on an engine. */
export async function buildOfflineImage(options: BuildOfflineImageOptions): Promise<void> {
  const staging = await mkdtemp(join(tmpdir(), "dtrcache-files-"));
  try {
    const args = ["--entry", options.entry, "--tag", options.tag, "--docker-host", options.dockerHost];
    let n = 0;
    for (const [imagePath, content] of Object.entries(options.extraFiles ?? {})) {
      const file = join(staging, `f${n++}`);
      await writeFile(file, content);
      args.push("--add", `${imagePath}=${file}`);
    }
    const result = await runBuild(args);
    if (result.code !== 0) throw new HarnessError(result.code === 3 ? "ENTRY_MISSING" : "COMMAND_FAILED", result.stderr.trim());
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Builds one of the project's service images under its versioned tag; returns the tag, or
 * undefined when the service has not been compiled yet (the build script says so on stderr).
 */
export async function buildServiceImage(service: ServiceName, dockerHost: string, tag?: string): Promise<string | undefined> {
  const result = await runBuild(["--service", service, "--docker-host", dockerHost, ...(tag ? ["--tag", tag] : [])]);
  if (result.code === 3) {
    process.stderr.write(`harness: ${result.stderr.trim()}\n`);
    return undefined;
  }
  if (result.code !== 0) throw new HarnessError("COMMAND_FAILED", result.stderr.trim());
  return result.stdout.trim();
}
