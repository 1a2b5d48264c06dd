// The file system steps that make a write survive a host crash (power loss, kernel panic), not
// just a process crash. A rename is atomic but not durable: without fsync the new name can reach
// the disk before the file's bytes do, and after a crash a complete-looking name points at a short
// or zero-filled file. So: bytes to disk (fsync the file), then the name (rename), then the name
// to disk (fsync the directory that holds it).
import { mkdir, open, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

/** fsync a file by path (any descriptor of the inode flushes its data on Linux). */
export async function syncFile(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a directory, which makes the names created or removed in it durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** mkdir -p whose new directories are durable too (each new name is fsynced in its parent). */
export async function mkdirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  // `first` is the top-most directory created; every directory from its parent down to `dir`'s
  // parent gained one entry.
  const chain: string[] = [];
  for (let d = dir; d !== first; d = dirname(d)) chain.push(dirname(d));
  chain.push(dirname(first));
  for (const d of new Set(chain)) await syncDir(d);
}

/** Renames an already-synced file into place and makes the new name durable. */
export async function renameDurable(from: string, to: string): Promise<void> {
  await mkdirDurable(dirname(to));
  await rename(from, to);
  await syncDir(dirname(to));
}

/** Writes `data` to `temp`, syncs it, and renames it to `final` durably (temp + rename). */
export async function writeFileDurable(temp: string, final: string, data: string | Buffer): Promise<void> {
  await writeFile(temp, data);
  await syncFile(temp);
  await renameDurable(temp, final);
}
