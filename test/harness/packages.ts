import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { HarnessError } from "./errors.js";
import { run } from "./proc.js";

/** A Debian package and one program that proves it is installed. */
export interface SystemPackage {
  name: string;
  binary: string;
}

export const ENGINE_PACKAGES: readonly SystemPackage[] = [
  { name: "docker.io", binary: "dockerd" },
  { name: "docker.io", binary: "containerd" },
  { name: "iproute2", binary: "ip" },
  { name: "util-linux", binary: "nsenter" },
];

/** Everything the integration suite and the benchmarks use. */
export const ALL_PACKAGES: readonly SystemPackage[] = [
  ...ENGINE_PACKAGES,
  { name: "docker-registry", binary: "docker-registry" },
  { name: "skopeo", binary: "skopeo" },
  { name: "nginx-light", binary: "nginx" },
  { name: "wrk", binary: "wrk" },
  { name: "tmux", binary: "tmux" },
  // promtool checks the alert rules and the example scrape config in deploy/monitoring
  { name: "prometheus", binary: "promtool" },
  // tests make throwaway CAs and certificates with the openssl CLI (unit tests too: every
  // project's global setup runs before any test file)
  { name: "openssl", binary: "openssl" },
  // the stand-in for the production images' base node:24-bookworm-slim (deploy/build.mjs --make-base)
  { name: "debootstrap", binary: "debootstrap" },
];

const SEARCH_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** Absolute path of a program in the usual system directories, or undefined. */
export async function findBinary(name: string): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? "").split(":").filter(Boolean), ...SEARCH_DIRS];
  for (const dir of dirs) {
    try {
      await access(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** The docker CLI; the harness always passes -H, so which build it is does not matter. */
export async function dockerCli(): Promise<string> {
  const cli = (await findBinary("docker")) ?? undefined;
  if (!cli) throw new HarnessError("PACKAGE_MISSING", "the docker CLI is not installed (apt-get install docker.io)");
  return cli;
}

/**
 * Installs the Debian packages whose programs are missing (one apt-get run), when running as root.
 * Costs a few file checks when everything is present.
 */
export async function ensurePackages(packages: readonly SystemPackage[] = ALL_PACKAGES): Promise<string[]> {
  const missing = new Set<string>();
  for (const pkg of packages) {
    if (!(await findBinary(pkg.binary))) missing.add(pkg.name);
  }
  if (missing.size === 0) return [];
  const names = [...missing].sort();
  if (process.getuid?.() !== 0) {
    throw new HarnessError("PACKAGE_MISSING", `missing system packages ${names.join(", ")}; install them as root: apt-get install -y ${names.join(" ")}`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  process.stderr.write(`harness: installing ${names.join(", ")} with apt-get\n`);
  await run("apt-get", ["update"], { env, timeoutMs: 600_000 });
  await run("apt-get", ["install", "-y", "--no-install-recommends", ...names], { env, timeoutMs: 900_000 });
  const still = packages.filter((p) => missing.has(p.name));
  for (const pkg of still) {
    if (!(await findBinary(pkg.binary))) throw new HarnessError("PACKAGE_MISSING", `${pkg.name} installed but ${pkg.binary} is still not found`);
  }
  return names;
}
