// The processes sharing one root directory (cluster workers, replicas on shared storage), and the
// durability decision of issue 9 made for all of them:
//
//   <root>/sessions/<pid>-<rand>@<host>   one per running process (durable create, mtime heartbeat,
//                                         removed by a graceful close)
//   <root>/clean-shutdown                 written only by the LAST process to close gracefully
//   <root>/doubted                        durable: some start found an unclean stop; removed once a
//                                         process has hashed every blob
//
// A start trusts the blobs without hashing when no dead session is left behind, no `doubted`
// marker exists, and either the clean-shutdown marker is there or another process is running
// (the store was never stopped: its commits were all fsync-then-rename). Anything else — a session
// whose process is gone (SIGKILL, host crash), a marker missing with nobody running — doubts every
// blob (hashed before its first serve) and writes `doubted`, so later starters doubt too until
// one pass has finished.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { mkdir, readdir, stat, unlink, utimes } from "node:fs/promises";
import { join } from "node:path";
import { syncDir, writeFileDurable } from "./durable.js";

const HEARTBEAT_MS = 5_000;
/** A session not refreshed for this long belongs to a process that is gone (another node's too). */
const SESSION_STALE_MS = 30_000;
const DOUBTED = "doubted";

export class Sessions {
  private readonly dir: string;
  private readonly host = hostname();
  private name: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly root: string) {
    this.dir = join(root, "sessions");
  }

  /**
   * Registers this process; `consumeMarker` removes the clean-shutdown marker durably and says
   * whether it was there. Returns whether the blobs may be trusted without hashing.
   */
  async register(consumeMarker: () => Promise<boolean>): Promise<boolean> {
    await mkdir(this.dir, { recursive: true });
    const { live, dead } = await this.others();
    const marker = await consumeMarker();
    const doubted = await exists(join(this.root, DOUBTED));
    const clean = !doubted && dead.length === 0 && (marker || live > 0);
    // The doubt is written before the dead sessions go, so a crash in between still doubts.
    if (!clean) await writeFileDurable(join(this.root, "tmp", `${DOUBTED}.${process.pid}.part`), join(this.root, DOUBTED), `${new Date().toISOString()}\n`);
    for (const d of dead) await unlink(join(this.dir, d)).catch(() => undefined);
    this.name = `${process.pid}-${randomBytes(4).toString("hex")}@${this.host}`;
    await writeFileDurable(join(this.root, "tmp", `${this.name}.session.part`), join(this.dir, this.name), `${process.pid}\n`);
    this.timer = setInterval(() => {
      const now = new Date();
      if (this.name) utimes(join(this.dir, this.name), now, now).catch(() => undefined);
    }, HEARTBEAT_MS);
    this.timer.unref();
    return clean;
  }

  /** Every blob was hashed by this process: later starts need not doubt the store. */
  async doubtResolved(): Promise<void> {
    try {
      await unlink(join(this.root, DOUBTED));
      await syncDir(this.root);
    } catch {
      // Already gone (another process finished its pass first).
    }
  }

  /** Graceful close: removes this session; true when no other live process remains. */
  async unregister(): Promise<boolean> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.name) await unlink(join(this.dir, this.name)).catch(() => undefined);
    this.name = undefined;
    await syncDir(this.dir).catch(() => undefined);
    const { live } = await this.others();
    return live === 0;
  }

  private async others(): Promise<{ live: number; dead: string[] }> {
    let live = 0;
    const dead: string[] = [];
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (name === this.name) continue;
      const st = await stat(join(this.dir, name)).catch(() => undefined);
      if (!st) continue;
      if (Date.now() - st.mtimeMs > SESSION_STALE_MS || this.deadHere(name)) dead.push(name);
      else live++;
    }
    return { live, dead };
  }

  /** A session of this host whose pid no longer runs (found at once, without waiting for staleness). */
  private deadHere(name: string): boolean {
    const at = name.indexOf("@");
    const host = name.slice(at + 1);
    const pid = name.slice(0, name.indexOf("-"));
    if (host !== this.host || !pid || !/^\d+$/.test(pid)) return false;
    // Our own pid under another name is a previous incarnation: a container restarted after a
    // crash runs as PID 1 again, with the same hostname.
    if (Number(pid) === process.pid) return true;
    try {
      process.kill(Number(pid), 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === "ESRCH";
    }
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
