#!/usr/bin/env node
// Builds the production images (deploy/cache-server.Dockerfile, deploy/controller.Dockerfile) on
// the engine the operator names. Run `node deploy/build.mjs --help` for the usage.
//
// The services are bundled here (esbuild, from the compiled workspaces: `npm run build` first)
// and `docker build` gets a small context with the bundle, so the build needs no npm registry and
// no build stage in the image. The base image is node:24-bookworm-slim; where no registry is
// reachable, --make-base makes a stand-in for it (Debian bookworm minbase from a Debian mirror with
// debootstrap + the project's own Node 24 binary at /usr/local/bin/node + the "node" user, uid
// 1000) and imports it into the engine under that name, so the Dockerfiles stay unchanged.
import { execFile, spawn } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, realpath, rename, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { RUNTIME_MAJOR, RUNTIME_NODE, runtimeVersion } from "../scripts/node-runtime.mjs";
import { bundle } from "./offline/build.mjs";

const exec = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export const BASE_IMAGE = `node:${RUNTIME_MAJOR}-bookworm-slim`;
/** The docker CLI's default engine when DOCKER_HOST is unset. */
export const DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock";
export const DEFAULT_BASE_CACHE = process.env.DTRCACHE_BASE_CACHE ?? "/var/cache/dtrcache/base";

export const SERVICES = {
  "cache-server": {
    entry: "cache-server/dist/main.js",
    packageJson: "cache-server/package.json",
    dockerfile: "deploy/cache-server.Dockerfile",
    files: { "healthcheck.mjs": "deploy/image/healthcheck.mjs" },
  },
  controller: {
    entry: "controller/dist/cli/main.js",
    packageJson: "controller/package.json",
    dockerfile: "deploy/controller.Dockerfile",
    files: {},
  },
};

export const USAGE = `Usage: node deploy/build.mjs [options] [SERVICE...]

Builds the production images of SERVICE (cache-server, controller; default: both) from
deploy/<service>.Dockerfile on a Docker engine, and prints each image's tag.
Compile first: npm ci && npm run build.

Options:
  -H, --host HOST      engine to build on: unix:///path, tcp://host:port, ssh://user@host
                       (default: $DOCKER_HOST, else ${DEFAULT_DOCKER_HOST}, as the docker CLI)
  -t, --tag TAG        image tag (one SERVICE only; default dtrcache/SERVICE:<package version>)
      --base-image IMG base image (default ${BASE_IMAGE})
      --make-base      no registry reachable: make a stand-in for ${BASE_IMAGE} with
                       debootstrap (Debian bookworm minbase + this project's Node ${RUNTIME_MAJOR}) and
                       import it, unless the engine already has that image. Needs root.
      --make-base-only make (or reuse) the stand-in, build nothing
      --mirror URL     Debian mirror for --make-base (default: the one in /etc/apt/sources.list.d)
      --base-cache DIR where --make-base keeps its tarball (default ${DEFAULT_BASE_CACHE})
  -h, --help           this text

Exit codes: 0 built, 1 failed, 2 bad arguments, 3 a service is not compiled yet (npm run build).
`;

export class BuildError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "BuildError";
    this.code = code;
  }
}

function dockerBin() {
  return ["/usr/bin/docker", "/usr/local/bin/docker"].find((p) => existsSync(p)) ?? "docker";
}

/** docker -H HOST ARGS; the legacy builder (no buildx plugin needed, and 20.10 engines). */
async function docker(host, args, options = {}) {
  try {
    return await exec(dockerBin(), ["-H", host, ...args], {
      env: { ...process.env, DOCKER_BUILDKIT: "0", DOCKER_HOST: host },
      maxBuffer: 64 * 1024 * 1024,
      ...options,
    });
  } catch (error) {
    throw new BuildError("BUILD_FAILED", `docker ${args.slice(0, 2).join(" ")} on ${host} failed: ${String(error.stderr || error.message).trim()}`);
  }
}

async function imageExists(host, image) {
  try {
    await exec(dockerBin(), ["-H", host, "image", "inspect", "--format", "{{.Id}}", image], { env: { ...process.env, DOCKER_HOST: host } });
    return true;
  } catch {
    return false;
  }
}

/** The Debian mirror apt uses here (deb822 .sources or one-line .list), else deb.debian.org. */
export async function debianMirror() {
  const candidates = [];
  for (const dir of ["/etc/apt/sources.list.d"]) {
    let names;
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names.sort()) candidates.push(join(dir, name));
  }
  candidates.push("/etc/apt/sources.list");
  for (const file of candidates) {
    let text;
    try {
      text = await readFile(file, "utf8");
    } catch {
      continue;
    }
    for (const stanza of text.split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1] ?? "";
      if (uri && /\/debian\/?$/.test(uri) && /(^|\s)bookworm(\s|$)/.test(suites)) return uri;
    }
    const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian\/?)\s+bookworm\s/m.exec(text);
    if (line) return line[1];
  }
  return "http://deb.debian.org/debian";
}

async function run(file, args, what) {
  await new Promise((resolvePromise, reject) => {
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.on("error", (error) => reject(new BuildError("BUILD_FAILED", `${what}: ${error.message}`)));
    child.on("close", (code) => (code === 0 ? resolvePromise() : reject(new BuildError("BUILD_FAILED", `${what} exited ${code}: ${stderr.trim()}`))));
  });
}

/**
 * The stand-in's root filesystem as a tarball in cacheDir (made once per Node version): Debian
 * bookworm minbase, apt lists and caches dropped, node at /usr/local/bin/node, the node user.
 */
export async function baseTarball({ cacheDir = DEFAULT_BASE_CACHE, mirror, log = () => {} } = {}) {
  const version = runtimeVersion();
  const tarball = join(cacheDir, `node-${version}-bookworm-minbase.tar`);
  if (existsSync(tarball)) return tarball;
  if (process.getuid?.() !== 0) throw new BuildError("BUILD_FAILED", "--make-base: debootstrap needs root");
  const debootstrap = ["/usr/sbin/debootstrap", "/usr/bin/debootstrap"].find((p) => existsSync(p));
  if (!debootstrap) throw new BuildError("BUILD_FAILED", "--make-base: debootstrap is not installed (apt-get install debootstrap)");
  await mkdir(cacheDir, { recursive: true });
  const dir = await mkdtemp(join(cacheDir, "rootfs-"));
  try {
    const from = mirror ?? (await debianMirror());
    log(`debootstrap --variant=minbase bookworm from ${from}`);
    await run(debootstrap, ["--variant=minbase", "bookworm", dir, from], "debootstrap");
    await copyFile(await realpath(RUNTIME_NODE), join(dir, "usr/local/bin/node"));
    await chmod(join(dir, "usr/local/bin/node"), 0o755);
    // the official image's user: uid/gid 1000, home /home/node
    await writeFile(join(dir, "etc/passwd"), `${(await readFile(join(dir, "etc/passwd"), "utf8")).trimEnd()}\nnode:x:1000:1000::/home/node:/bin/bash\n`);
    await writeFile(join(dir, "etc/group"), `${(await readFile(join(dir, "etc/group"), "utf8")).trimEnd()}\nnode:x:1000:\n`);
    await mkdir(join(dir, "home/node"), { recursive: true });
    await run("chown", ["1000:1000", join(dir, "home/node")], "chown");
    for (const sub of ["var/lib/apt/lists", "var/cache/apt", "var/log", "usr/share/doc", "usr/share/man", "usr/share/info"]) {
      await rm(join(dir, sub), { recursive: true, force: true });
      await mkdir(join(dir, sub), { recursive: true });
    }
    // the binary must run on this root filesystem (its libraries are the minbase's)
    const { stdout } = await exec("chroot", [dir, "/usr/local/bin/node", "--version"]);
    if (stdout.trim() !== version) throw new BuildError("BUILD_FAILED", `node in the stand-in prints ${stdout.trim()}, expected ${version}`);
    const partial = `${tarball}.${process.pid}.partial`;
    await run("tar", ["--numeric-owner", "-C", dir, "-cf", partial, "."], "tar");
    await rename(partial, tarball);
    return tarball;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Imports the stand-in as BASE_IMAGE into the engine unless it has that image already. */
export async function ensureBaseImage(host, options = {}) {
  const image = options.baseImage ?? BASE_IMAGE;
  if (await imageExists(host, image)) return { image, imported: false };
  const tarball = await baseTarball(options);
  await docker(host, [
    "import",
    "--change",
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "--change",
    `ENV NODE_VERSION=${runtimeVersion().slice(1)}`,
    "--change",
    'CMD ["node"]',
    "--change",
    'LABEL org.opencontainers.image.description="stand-in for node:24-bookworm-slim: Debian bookworm minbase (debootstrap) + the project\'s Node 24"',
    "--message",
    "dtrcache stand-in base (deploy/build.mjs --make-base)",
    tarball,
    image,
  ]);
  return { image, imported: true };
}

/** The commit and its time: labels that only change with the source keep rebuilds identical. */
async function gitRevision() {
  try {
    const { stdout } = await exec("git", ["-C", root, "log", "-1", "--format=%H %cI"]);
    const [revision, created] = stdout.trim().split(" ");
    return { revision: revision ?? "unknown", created: created ?? "unknown" };
  } catch {
    return { revision: "unknown", created: "unknown" };
  }
}

/** Builds one service's production image on `host`; returns its tag. */
export async function buildService(service, { host, tag, baseImage = BASE_IMAGE } = {}) {
  const spec = SERVICES[service];
  if (!spec) throw new BuildError("BAD_ARGUMENT", `"${service}" is not one of ${Object.keys(SERVICES).join(", ")}`);
  const entry = join(root, spec.entry);
  if (!existsSync(entry)) throw new BuildError("ENTRY_MISSING", `${service}: ${spec.entry} is not built yet (run npm run build)`);
  const { version } = JSON.parse(await readFile(join(root, spec.packageJson), "utf8"));
  const finalTag = tag ?? `dtrcache/${service}:${version}`;
  const context = await mkdtemp(join(tmpdir(), `dtrcache-${service}-`));
  try {
    const git = await gitRevision();
    await bundle(entry, join(context, "main.mjs"));
    await copyFile(join(root, "deploy/offline/start.sh"), join(context, "start.sh"));
    for (const [name, from] of Object.entries(spec.files)) await copyFile(join(root, from), join(context, name));
    await docker(
      host,
      [
        "build",
        "-q",
        "-f",
        join(root, spec.dockerfile),
        "--build-arg",
        `BASE_IMAGE=${baseImage}`,
        "--build-arg",
        `VERSION=${version}`,
        "--build-arg",
        `REVISION=${git.revision}`,
        "--build-arg",
        `CREATED=${git.created}`,
        "-t",
        finalTag,
        context,
      ],
      { env: { ...process.env, DOCKER_BUILDKIT: "0", DOCKER_HOST: host, DOCKER_CONFIG: join(context, ".docker") } },
    );
    return finalTag;
  } finally {
    await rm(context, { recursive: true, force: true });
  }
}

export function parseArgs(argv, env = process.env) {
  const options = { services: [], makeBase: false, makeBaseOnly: false, help: false };
  const value = (i, flag) => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith("-")) throw new BuildError("BAD_ARGUMENT", `${flag}: missing value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const take = () => (eq > 0 ? arg.slice(eq + 1) : value(i++, flag));
    if (flag === "-h" || flag === "--help") options.help = true;
    else if (flag === "-H" || flag === "--host") options.host = take();
    else if (flag === "-t" || flag === "--tag") options.tag = take();
    else if (flag === "--base-image") options.baseImage = take();
    else if (flag === "--make-base") options.makeBase = true;
    else if (flag === "--make-base-only") options.makeBaseOnly = true;
    else if (flag === "--mirror") options.mirror = take();
    else if (flag === "--base-cache") options.cacheDir = take();
    else if (flag.startsWith("-")) throw new BuildError("BAD_ARGUMENT", `unknown option ${flag} (see --help)`);
    else if (SERVICES[arg]) options.services.push(arg);
    else throw new BuildError("BAD_ARGUMENT", `"${arg}" is not one of ${Object.keys(SERVICES).join(", ")}`);
  }
  options.host ??= env.DOCKER_HOST || DEFAULT_DOCKER_HOST;
  if (options.services.length === 0) options.services = Object.keys(SERVICES);
  if (options.tag && options.services.length !== 1) throw new BuildError("BAD_ARGUMENT", "--tag: name one SERVICE");
  return options;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  if (options.help) {
    process.stdout.write(USAGE);
    return;
  }
  const log = (message) => process.stderr.write(`build: ${message}\n`);
  if (options.makeBase || options.makeBaseOnly) {
    const started = Date.now();
    const { image, imported } = await ensureBaseImage(options.host, { baseImage: options.baseImage, mirror: options.mirror, cacheDir: options.cacheDir, log });
    log(`${image} ${imported ? "imported" : "already present"} on ${options.host} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    if (options.makeBaseOnly) return;
  }
  for (const service of options.services) {
    const started = Date.now();
    const tag = await buildService(service, options);
    log(`${tag} built on ${options.host} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    console.log(tag);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    console.error(`build: ${error.message}`);
    process.exit(error.code === "ENTRY_MISSING" ? 3 : error.code === "BAD_ARGUMENT" ? 2 : 1);
  });
}
