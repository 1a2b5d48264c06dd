import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HarnessError } from "./errors.js";
import { run } from "./proc.js";
import { runRoot } from "./paths.js";

function toInt(ip: string): number {
  return ip.split(".").reduce((acc, part) => acc * 256 + Number(part), 0);
}

function range(cidr: string): [number, number] {
  const [ip = "0.0.0.0", bits = "32"] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  const start = Math.floor(toInt(ip) / size) * size;
  return [start, start + size - 1];
}

export function overlaps(a: string, b: string): boolean {
  const [a0, a1] = range(a);
  const [b0, b1] = range(b);
  return a0 <= b1 && b0 <= a1;
}

/** Destinations of every IPv4 route the host has (all tables), as CIDRs; the default route is skipped. */
export async function hostRoutes(): Promise<string[]> {
  const { stdout } = await run("ip", ["-4", "-o", "route", "show", "table", "all"], { allowFailure: true });
  const routes: string[] = [];
  for (const line of stdout.split("\n")) {
    const words = line.trim().split(/\s+/);
    // "local 10.0.0.1 dev ..." / "broadcast ..." / "10.1.0.0/16 via ..."
    const dest = ["local", "broadcast", "unicast", "multicast", "anycast"].includes(words[0] ?? "") ? words[1] : words[0];
    if (!dest || dest === "default" || !/^\d+\.\d+\.\d+\.\d+/.test(dest)) continue;
    routes.push(dest.includes("/") ? dest : `${dest}/32`);
  }
  return routes;
}

/**
 * The address space used inside node namespaces. Only the underlay /24 is visible to the host; the
 * others stay inside each node's namespace but must not overlap the underlay, or tasks could not
 * reach servers on the host side.
 */
export const INNER_POOLS = {
  /** docker0 of node i: 10.214.i.1/24 */
  bridge: (node: number): string => `10.214.${node}.1/24`,
  /** local networks such as docker_gwbridge */
  local: "10.215.0.0/16",
  /** overlay networks of the swarm */
  swarm: "10.216.0.0/16",
};

/**
 * Claims a free /24 for a new instance's underlay: one that no host route overlaps and that no
 * other instance holds (claims are files created exclusively, removed with the instance).
 */
export async function claimSubnet(instanceId: string): Promise<string> {
  const routes = await hostRoutes();
  const dir = join(runRoot(), "subnets");
  await mkdir(dir, { recursive: true });
  for (let third = 0; third < 256; third++) {
    const subnet = `10.211.${third}.0/24`;
    if (routes.some((r) => overlaps(r, subnet))) continue;
    try {
      await writeFile(join(dir, subnet.replace("/", "_")), instanceId, { flag: "wx" });
      return subnet;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
  throw new HarnessError("NO_FREE_SUBNET", "no free /24 in 10.211.0.0/16 for a test swarm (too many instances, or host routes cover it)");
}

/** Host (.1) and node (.10+i) addresses in a /24. */
export function addressIn(subnet: string, host: number): string {
  const base = subnet.split("/")[0]?.split(".").slice(0, 3).join(".") ?? "10.211.0";
  return `${base}.${host}`;
}
