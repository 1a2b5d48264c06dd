// What a swarm instance could leave on the host, for tests that prove teardown (and node restarts)
// leave nothing behind. Looks at every process and mount namespace, not just the harness's own view.
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { run } from "./proc.js";

/** Live (non-zombie) processes whose command line mentions one of `needles`. */
export async function processesMentioning(needles: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir("/proc")).filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").join(" ");
      if (needles.some((n) => cmdline.includes(n))) found.push(`${pid} ${cmdline.slice(0, 120)}`);
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/** Mount points, as seen from any process's mount namespace, under one of `dirs`. */
export async function mountsMentioning(dirs: string[]): Promise<string[]> {
  const found = new Set<string>();
  for (const pid of (await readdir("/proc")).filter((p) => /^\d+$/.test(p))) {
    const text = await readFile(`/proc/${pid}/mountinfo`, "utf8").catch(() => "");
    for (const line of text.split("\n")) {
      const target = line.split(" ")[4] ?? "";
      if (dirs.some((d) => target.startsWith(d))) found.add(target);
    }
  }
  return [...found];
}

export interface InstanceView {
  id: string;
  runDir: string;
  workDir: string;
  /** Shim sockets in /run/containerd/s/ seen while the instance ran (see shimSocketsOf). */
  shimSockets?: string[];
}

/** Everything an instance could leave behind; empty lists and false flags mean nothing is left. */
export async function leftovers(instance: InstanceView): Promise<Record<string, unknown>> {
  const { stdout } = await run("ip", ["netns", "list"]);
  return {
    processes: await processesMentioning([instance.runDir, instance.workDir]),
    netns: stdout.split("\n").filter((line) => line.startsWith(`dh-${instance.id}-`)),
    hostLink: existsSync(`/sys/class/net/dh${instance.id}`),
    mounts: await mountsMentioning([instance.runDir, instance.workDir]),
    runDir: existsSync(instance.runDir),
    workDir: existsSync(instance.workDir),
    cgroup: existsSync(`/sys/fs/cgroup/pids/dtrcache-h/${instance.id}`) || existsSync(`/sys/fs/cgroup/dtrcache-h/${instance.id}`),
    shimSockets: (instance.shimSockets ?? []).filter((s) => existsSync(s)),
  };
}

export const NOTHING_LEFT = { processes: [], netns: [], hostLink: false, mounts: [], runDir: false, workDir: false, cgroup: false, shimSockets: [] };

/** The instance's run directory (sockets, exec-roots) from any of its nodes' DOCKER_HOST. */
export const runDirOf = (dockerHost: string): string => dockerHost.replace(/^unix:\/\//, "").replace(/\/n\d+\.sock$/, "");
