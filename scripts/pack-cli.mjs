#!/usr/bin/env node
// Packs dtrcache as an npm tarball that installs on its own: `npm i -g ./dtrcache-<version>.tgz`
// puts `dtrcache` on PATH. The controller workspace itself cannot be installed from a packed
// tarball: it depends on @dtrcache/crds, a private workspace package that is on no registry. So
// the CLI is bundled (esbuild, from controller/dist: `npm run build` first) into one file with no
// dependencies, next to the completion scripts, and `npm pack` runs on that.
//
//   node scripts/pack-cli.mjs [--out DIR]      prints the tarball's path (--help: the usage)
import { execFile } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT, RUNTIME_MAJOR } from "./node-runtime.mjs";
import { bundle } from "../deploy/offline/build.mjs";

const exec = promisify(execFile);

export async function packCli(outDir = process.cwd()) {
  const entry = join(REPO_ROOT, "controller/dist/cli/main.js");
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build first`);
  const controller = JSON.parse(await readFile(join(REPO_ROOT, "controller/package.json"), "utf8"));
  const stage = await mkdtemp(join(tmpdir(), "dtrcache-pack-"));
  try {
    // the entry keeps its own "#!/usr/bin/env node" line first (esbuild preserves it)
    await bundle(entry, join(stage, "dtrcache.mjs"));
    await chmod(join(stage, "dtrcache.mjs"), 0o755);
    await mkdir(join(stage, "completion"));
    for (const f of ["dtrcache.bash", "_dtrcache"]) await copyFile(join(REPO_ROOT, "deploy/completion", f), join(stage, "completion", f));
    await writeFile(
      join(stage, "package.json"),
      `${JSON.stringify(
        {
          name: "dtrcache",
          version: controller.version,
          description: "dtrcache: the Swarm operator for DTR content caches (bundled CLI, no dependencies)",
          type: "module",
          license: "Apache-2.0",
          bin: { dtrcache: "dtrcache.mjs" },
          files: ["dtrcache.mjs", "completion/"],
          engines: { node: `>=${RUNTIME_MAJOR}` },
        },
        null,
        2,
      )}\n`,
    );
    await mkdir(outDir, { recursive: true });
    const { stdout } = await exec("npm", ["pack", "--silent", "--pack-destination", resolve(outDir)], { cwd: stage });
    return join(resolve(outDir), stdout.trim().split("\n").pop() ?? "");
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

export const USAGE = `Usage: node scripts/pack-cli.mjs [--out DIR]

Packs the dtrcache CLI (bundled from controller/dist: npm run build first) as an npm tarball with
no dependencies, writes it to DIR (default: the current directory) and prints its path. Then:
  npm i -g ./dtrcache-<version>.tgz        dtrcache on PATH
  npx --yes ./dtrcache-<version>.tgz --help without installing

Exit codes: 0 packed, 1 failed, 2 bad arguments.`;

/** The command line: `{ outDir }`, `"help"`, or an error message for a bad argument. */
export function parseArgs(argv) {
  let outDir;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") return "help";
    if (arg === "--out") {
      const value = argv[++i];
      if (value === undefined || value.startsWith("-")) return { error: "--out needs a directory" };
      outDir = value;
    } else if (arg.startsWith("--out=")) outDir = arg.slice("--out=".length);
    else return { error: `unknown argument ${arg}` };
  }
  return { outDir };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = parseArgs(process.argv.slice(2));
  if (args === "help") {
    console.log(USAGE);
  } else if (args.error !== undefined) {
    console.error(`pack-cli: ${args.error}\n\n${USAGE}`);
    process.exitCode = 2;
  } else {
    packCli(args.outDir)
      .then((file) => console.log(file))
      .catch((error) => {
        console.error(`pack-cli: ${error.message}`);
        process.exit(1);
      });
  }
}
