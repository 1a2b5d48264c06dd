import { lstat, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";

// containerd 1.6 puts every shim's ttrpc socket in one host-wide directory, /run/containerd/s/,
// named by a hash of (containerd address, namespace, task id), whatever containerd's own state
// dir is. A SIGKILLed shim cannot remove its socket. The only reliable way to tell which of those
// files belong to one engine is the `address` file the shim wrote into its task bundle, under
// that engine's exec-root.
const TASKS_DIR = join("containerd", "daemon", "io.containerd.runtime.v2.task");
const SHIM_ADDRESS = /^unix:\/\/(\/run\/containerd\/s\/[0-9a-f]{64})$/;

async function subdirs(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
  } catch {
    return [];
  }
}

/** Shim socket paths recorded in the task bundles under one engine's exec-root. */
export async function shimSocketsOf(execRoot: string): Promise<string[]> {
  const sockets: string[] = [];
  for (const namespace of await subdirs(join(execRoot, TASKS_DIR))) {
    for (const bundle of await subdirs(namespace)) {
      const address = (await readFile(join(bundle, "address"), "utf8").catch(() => "")).trim();
      // anything but a shim socket path of the expected shape is ignored, never removed
      const path = SHIM_ADDRESS.exec(address)?.[1];
      if (path) sockets.push(path);
    }
  }
  return sockets;
}

/**
 * Removes the shim sockets of one engine's tasks. Call only once that engine's shims are dead:
 * a live shim would lose its listening socket.
 */
export async function removeShimSockets(execRoot: string): Promise<void> {
  for (const path of await shimSocketsOf(execRoot)) {
    const stat = await lstat(path).catch(() => undefined);
    if (stat?.isSocket()) await rm(path, { force: true });
  }
}
