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

export function productionBuildScript(): string {
  return join(repoRoot(), "deploy", "build.mjs");
}

const baseImages = new Map<string, Promise<void>>();

/**
 * Makes sure the engine has node:24-bookworm-slim, the base of the production Dockerfiles: with
 * no registry, `deploy/build.mjs --make-base-only` imports a stand-in (Debian bookworm minbase
 * from debootstrap + the project's Node 24; its tarball is cached in /var/cache/dtrcache/base, so
 * only the first run on a machine pays for debootstrap). Once per engine and process.
 */
export async function ensureBaseImage(dockerHost: string): Promise<void> {
  let pending = baseImages.get(dockerHost);
  if (!pending) {
    pending = (async () => {
      const result = await run(process.execPath, [productionBuildScript(), "--make-base-only", "--host", dockerHost], {
        allowFailure: true,
        timeoutMs: 600_000,
      });
      if (result.code !== 0) throw new HarnessError("COMMAND_FAILED", result.stderr.trim());
    })();
    baseImages.set(dockerHost, pending);
    pending.catch(() => baseImages.delete(dockerHost));
  }
  await pending;
}

/**
 * Builds one of the project's service images under its versioned tag; returns the tag, or
 * undefined when the service has not been compiled yet (the build script says so on stderr).
 * cache-server and controller are the production images (deploy/<service>.Dockerfile on the
 * node:24-bookworm-slim stand-in, built by deploy/build.mjs, as operators build them); test-http,
 * a test fixture, is the FROM-scratch offline build (deploy/offline/build.mjs).
 */
export async function buildServiceImage(service: ServiceName, dockerHost: string, tag?: string): Promise<string | undefined> {
  let result: { code: number; stdout: string; stderr: string };
  if (service === "test-http") {
    result = await runBuild(["--service", service, "--docker-host", dockerHost, ...(tag ? ["--tag", tag] : [])]);
  } else {
    await ensureBaseImage(dockerHost);
    result = await run(process.execPath, [productionBuildScript(), service, "--host", dockerHost, ...(tag ? ["--tag", tag] : [])], {
      allowFailure: true,
      timeoutMs: 300_000,
    });
  }
  if (result.code === 3) {
    process.stderr.write(`harness: ${result.stderr.trim()}\n`);
    return undefined;
  }
  if (result.code !== 0) throw new HarnessError("COMMAND_FAILED", result.stderr.trim());
  return result.stdout.trim();
}
