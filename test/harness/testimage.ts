import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { dockerCli } from "./packages.js";
import { run } from "./proc.js";

export interface PushedImage {
  ref: string;
  repository: string;
  tag: string;
  digest: string;
}

/**
 * Builds a small two-layer image locally (FROM scratch: nothing to pull) and pushes it to a registry
 * with skopeo, a real registry client. The second layer is 1 MiB of random bytes so that blob
 * transfers are large enough to see in logs and byte counts (`blobBytes` makes it larger).
 */
export async function pushTestImage(options: {
  dockerHost: string;
  registryHostPort: string;
  workDir: string;
  repository?: string;
  tag?: string;
  /** Size of the random layer; default 1 MiB. Larger images let a test act in the middle of a pull. */
  blobBytes?: number;
}): Promise<PushedImage> {
  const repository = options.repository ?? "hello/web";
  const tag = options.tag ?? "1";
  const context = await mkdtemp(join(options.workDir, "testimage-"));
  try {
    await writeFile(join(context, "hello.txt"), "hello from the dtrcache test image\n");
    await writeFile(join(context, "blob.bin"), randomBytes(options.blobBytes ?? 1024 * 1024));
    await writeFile(join(context, "Dockerfile"), 'FROM scratch\nCOPY hello.txt /hello.txt\nCOPY blob.bin /blob.bin\nCMD ["/hello.txt"]\n');
    const local = `${repository}:${tag}`;
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", DOCKER_BUILDKIT: "0", HOME: context, DOCKER_CONFIG: join(context, ".docker") };
    await run(await dockerCli(), ["-H", options.dockerHost, "build", "-q", "-t", local, context], { env });
    const ref = `${options.registryHostPort}/${repository}:${tag}`;
    const digestFile = join(context, "digest");
    await run(
      "skopeo",
      [
        "copy",
        "--quiet",
        "--src-daemon-host",
        options.dockerHost,
        "--dest-tls-verify=false",
        "--digestfile",
        digestFile,
        `docker-daemon:${local}`,
        `docker://${ref}`,
      ],
      { env },
    );
    // drop the local copy so that a pull on this engine really fetches every blob from the registry
    await run(await dockerCli(), ["-H", options.dockerHost, "image", "rm", local], { env });
    return { ref, repository, tag, digest: (await readFile(digestFile, "utf8")).trim() };
  } finally {
    await rm(context, { recursive: true, force: true });
  }
}
