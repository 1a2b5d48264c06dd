import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./proc.js";
import { instancesDir, runRoot, stateRoot } from "./paths.js";
import { removeShimSockets } from "./shims.js";
import { currentOwner, sameProcess } from "./tracked.js";

/**
 * Everything one swarm instance creates, written down BEFORE it is created so that a run that
 * crashes at any point leaves a record from which cleanupStale can remove all of it.
 */
export interface InstanceRecord {
  id: string;
  ownerPid: number;
  ownerStart: string;
  nodes: number;
  subnet: string;
  /** Sockets, pidfiles, exec-roots. */
  runDir: string;
  /** Data-roots and logs. */
  stateDir: string;
  netns: string[];
  hostLink: string;
  /** Relative cgroup path (same below every controller) holding every process of the instance. */
  cgroup: string;
}

export const NAME_PREFIX = "dh";
export const CGROUP_ROOT = "dtrcache-h";

export function recordFile(id: string): string {
  return join(instancesDir(), id, "owner.json");
}

export async function writeRecord(record: InstanceRecord): Promise<void> {
  await mkdir(join(instancesDir(), record.id), { recursive: true });
  await writeFile(recordFile(record.id), JSON.stringify(record, null, 2));
}

export async function listRecords(): Promise<InstanceRecord[]> {
  let ids: string[];
  try {
    ids = await readdir(instancesDir());
  } catch {
    return [];
  }
  const records: InstanceRecord[] = [];
  for (const id of ids) {
    try {
      records.push(JSON.parse(await readFile(recordFile(id), "utf8")) as InstanceRecord);
    } catch {
      // a directory without a readable record: nothing of it can be attributed; drop the directory
      await rm(join(instancesDir(), id), { recursive: true, force: true });
    }
  }
  return records;
}

export async function isOwnerAlive(record: InstanceRecord): Promise<boolean> {
  return await sameProcess(record.ownerPid, record.ownerStart);
}

export async function ownedByUs(record: InstanceRecord): Promise<boolean> {
  const owner = await currentOwner();
  return owner.pid === record.ownerPid && owner.start === record.ownerStart;
}

/** cgroup directories of an instance under every mounted hierarchy (v1 controllers, or v2). */
export async function cgroupDirs(relative: string): Promise<string[]> {
  const base = "/sys/fs/cgroup";
  if (existsSync(join(base, "cgroup.controllers"))) return [join(base, relative)];
  let entries: string[];
  try {
    entries = await readdir(base);
  } catch {
    return [];
  }
  return entries.map((c) => join(base, c, relative)).filter((d) => existsSync(d));
}

/** The cgroup directory the harness puts processes in itself (pids controller, or v2). */
export function trackingCgroup(relative: string): string {
  const base = "/sys/fs/cgroup";
  return existsSync(join(base, "cgroup.controllers")) ? join(base, relative) : join(base, "pids", relative);
}

async function walkProcs(dir: string, into: Set<number>): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    if (entry.isDirectory()) await walkProcs(join(dir, entry.name), into);
    else if (entry.name === "cgroup.procs") {
      const text = await readFile(join(dir, entry.name), "utf8").catch(() => "");
      for (const line of text.split("\n")) if (/^\d+$/.test(line)) into.add(Number(line));
    }
  }
}

/** Pids in the given cgroup trees and network namespaces. */
export async function pidsOf(cgroupRelative: string[], netns: string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const rel of cgroupRelative) for (const dir of await cgroupDirs(rel)) await walkProcs(dir, pids);
  for (const ns of netns) {
    if (!existsSync(join("/run/netns", ns))) continue;
    const { stdout } = await run("ip", ["netns", "pids", ns], { allowFailure: true });
    for (const line of stdout.split("\n")) if (/^\d+$/.test(line.trim())) pids.add(Number(line.trim()));
  }
  pids.delete(process.pid);
  return [...pids];
}

/**
 * SIGKILLs every process in the cgroups/netns until none is left (bounded). Safe without a graceful
 * stop: each engine lives in a private mount namespace and its own network namespace, so its
 * mounts, iptables rules and container interfaces vanish with its processes.
 */
export async function killAll(cgroupRelative: string[], netns: string[]): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = await pidsOf(cgroupRelative, netns);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function removeCgroupTree(dir: string): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) if (entry.isDirectory()) await removeCgroupTree(join(dir, entry.name));
  // a cgroup may still be draining its last exiting task for a moment
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** Mount points (as the host sees them) under any of the given directories, deepest first. */
export async function mountsUnder(dirs: string[]): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const targets = text
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((target) => dirs.some((d) => target === d || target.startsWith(`${d}/`)));
  return [...new Set(targets)].sort((a, b) => b.length - a.length);
}

/** Removes every trace of an instance; idempotent, so it also finishes a half-done teardown. */
export async function destroyInstance(record: InstanceRecord): Promise<void> {
  await killAll([record.cgroup], [...record.netns]);
  for (const dir of await cgroupDirs(record.cgroup)) await removeCgroupTree(dir);
  // the parent cgroup dirs are shared with other instances: remove them only when empty
  for (const dir of await cgroupDirs(CGROUP_ROOT)) await rmdir(dir).catch(() => undefined);
  await run("ip", ["link", "del", record.hostLink], { allowFailure: true });
  for (const ns of record.netns) {
    if (existsSync(join("/run/netns", ns))) await run("ip", ["netns", "del", ns], { allowFailure: true });
  }
  for (const mount of await mountsUnder([record.runDir, record.stateDir])) {
    await run("umount", ["-l", mount], { allowFailure: true });
  }
  // the shims are dead now; their sockets in /run/containerd/s/ are known only from the exec-roots
  for (let i = 1; i <= record.nodes; i++) await removeShimSockets(join(record.runDir, `n${i}`));
  await rm(record.runDir, { recursive: true, force: true });
  await rm(record.stateDir, { recursive: true, force: true });
  await rm(join(runRoot(), "subnets", record.subnet.replace("/", "_")), { force: true });
  await rm(join(instancesDir(), record.id), { recursive: true, force: true });
  await pruneEmptyRoots();
}

/** Drops the harness's bookkeeping directories once no instance or process uses them. */
export async function pruneEmptyRoots(): Promise<void> {
  for (const dir of [instancesDir(), join(runRoot(), "subnets"), join(runRoot(), "procs"), runRoot(), stateRoot()]) {
    await rmdir(dir).catch(() => undefined);
  }
}
