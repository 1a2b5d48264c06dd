// Shared by harness-up.mjs and harness-down.mjs: bundles test/harness/cli.ts (TypeScript, run
// without a build step) into .harness/ and runs it with the given arguments, forwarding signals.
// The CLI runs on the project's Node 24 (node-runtime.mjs) even when these scripts are started
// with the machine's older `node`: the harness's dependencies need Node >= 22.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT, RUNTIME_MAJOR, RUNTIME_NODE, runtimeVersion } from "./node-runtime.mjs";

export async function runHarnessCli(args) {
  runtimeVersion();
  const { build } = await import("esbuild");
  const outfile = join(REPO_ROOT, ".harness", "cli.mjs");
  await build({
    entryPoints: [join(REPO_ROOT, "test/harness/cli.ts")],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: `node${RUNTIME_MAJOR}`,
    logLevel: "warning",
  });
  const child = spawn(RUNTIME_NODE, [outfile, ...args], { stdio: "inherit" });
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code) => process.exit(code ?? 1));
}
