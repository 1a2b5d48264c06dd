// The file system steps that make a write survive a host crash (power loss, kernel panic), not
// just a process crash. A rename is atomic but not durable: without fsync the new name can reach
// the disk before the file's bytes do, and after a crash a complete-looking name points at a short
// or zero-filled file. So: bytes to disk (fsync the file), then the name (rename), then the name
// to disk (fsync the directory that holds it).
import { mkdir, open, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

/**
 * fsync by path. For a file, any read descriptor of the inode flushes its data on Linux; for a
 * directory, it makes the names created or removed in it durable. One step serves both.
 */
async function syncPath(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a file's bytes. */
export const syncFile = syncPath;
/** fsync a directory's names. */
export const syncDir = syncPath;

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
