#!/usr/bin/env node
// Bundle size and idle RSS of one cache-server process, the numbers in docs/cache-server.md
// ("config.yml contract"). Run after `npx tsc -b cache-server`, on the project's Node 24:
//
//   node test/contract/measure-cache-server.mjs [REPO_ROOT] [RUNS]
//
// REPO_ROOT (default: this checkout) lets two checkouts be compared on one machine. The bundle is
// what the images ship (deploy/offline/build.mjs bundle()); the RSS is read from /proc 3 s after
// start, with workers: 1 and nothing requested, RUNS times (default 5); the median is printed.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

const root = resolve(process.argv[2] ?? fileURLToPath(new URL("../..", import.meta.url)));
const runs = Number(process.argv[3] ?? 5);
const entry = join(root, "cache-server/dist/main.js");
const { bundle } = await import(pathToFileURL(join(root, "deploy/offline/build.mjs")).href);
const dir = await mkdtemp(join(tmpdir(), "measure-cache-server-"));
try {
  const out = join(dir, "main.mjs");
  await bundle(entry, out);
  const bundleBytes = (await stat(out)).size;
  const zodInBundle = (await readFile(out, "utf8")).includes("node_modules/zod/");
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const config = join(dir, "config.yml");
  await writeFile(
    config,
    [
      "version: 0.1",
      "storage:",
      "  delete:",
      "    enabled: true",
      "  filesystem:",
      `    rootdirectory: ${join(dir, "root")}`,
      "http:",
      `  addr: 127.0.0.1:${port}`,
      "  secret: measure",
      "  debug:",
      `    addr: 127.0.0.1:${port + 1}`,
      "middleware:",
      "  registry:",
      "    - name: downstream",
      "      options:",
      "        blobttl: 24h",
      "        upstreams: [http://127.0.0.1:1]",
      "        workers: 1",
      "",
    ].join("\n"),
  );
  const rssKiB = [];
  for (let i = 0; i < runs; i++) {
    const child = spawn(process.execPath, [out, config], { stdio: ["ignore", "ignore", "inherit"] });
    await sleep(3000);
    const status = await readFile(`/proc/${child.pid}/status`, "utf8");
    rssKiB.push(Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]));
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGTERM");
    await exited;
  }
  rssKiB.sort((a, b) => a - b);
  const median = rssKiB[Math.floor(rssKiB.length / 2)] ?? Number.NaN;
  console.log(JSON.stringify({ root, node: process.version, bundleBytes, zodInBundle, rssKiB, medianRssMiB: Number((median / 1024).toFixed(1)) }));
} finally {
  await rm(dir, { recursive: true, force: true });
}
