// Shared by harness-up.mjs and harness-down.mjs: bundles test/harness/cli.ts (TypeScript, run
// without a build step) into .harness/ and runs it with the given arguments, forwarding signals.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

export async function runHarnessCli(args) {
  const { build } = await import("esbuild");
  const outfile = join(root, ".harness", "cli.mjs");
  await build({ entryPoints: [join(root, "test/harness/cli.ts")], outfile, bundle: true, platform: "node", format: "esm", target: "node20", logLevel: "warning" });
  const child = spawn(process.execPath, [outfile, ...args], { stdio: "inherit" });
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code) => process.exit(code ?? 1));
}
