// Cross-process fill claims: one upstream fill per digest across every process sharing a root.
//
//   <root>/claims/<hex>                     the claim: created with O_EXCL, JSON {token, pid, host, temp, size?}
//   <root>/claims/<hex>.takeover.<token>    who replaces a stale claim (O_EXCL: one winner per stale claim)
//
// The owner refreshes the claim's mtime every HEARTBEAT_MS; a claim whose mtime is older than
// STALE_MS belongs to a dead (or frozen) process and may be taken over, and so, at once, does a
// claim of this host whose pid is gone. Every process on a
// directory compares the mtime to its own clock, so several nodes need synchronized clocks (NTP)
// and a file system that propagates mtimes (local disk and bind mounts do; see docs/cache-server.md
// for NFS). Ownership is re-checked through the claim's inode: a process that lost its claim stops
// writing before its next chunk.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { mkdir, open, readFile, readdir, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const HEARTBEAT_MS = 1_000;
export const STALE_MS = 10_000;

export interface ClaimInfo {
  readonly token: string;
  readonly pid: number;
  readonly host: string;
  /** The temp file the owner writes (in <root>/tmp). */
  readonly temp: string;
  /** Set once the upstream answered 200 with a Content-Length. */
  readonly size?: number;
  readonly mediaType?: string;
}

export type ClaimState =
  | { readonly kind: "none" }
  | { readonly kind: "live"; readonly info: ClaimInfo | undefined; readonly key: string }
  | { readonly kind: "stale"; readonly info: ClaimInfo | undefined; readonly key: string };

/** A claim this process holds. */
export class OwnedClaim {
  private timer: NodeJS.Timeout | undefined;
  private lostFlag = false;
  private lastCheck = Date.now();

  constructor(
    readonly path: string,
    private info: ClaimInfo,
    private readonly ino: number,
    private readonly onReleased: () => void,
  ) {
    this.timer = setInterval(() => void this.beat(), HEARTBEAT_MS);
    this.timer.unref();
  }

  get temp(): string {
    return this.info.temp;
  }

  /** True once another process took the claim over (this one was frozen past STALE_MS). */
  get lost(): boolean {
    return this.lostFlag;
  }

  private async beat(): Promise<void> {
    if (!(await this.stillMine())) return;
    const now = new Date();
    await utimes(this.path, now, now).catch(() => undefined);
  }

  /** Whether the claim file is still the one we created; cheap enough to call before a write. */
  async stillMine(): Promise<boolean> {
    if (this.lostFlag) return false;
    const st = await stat(this.path).catch(() => undefined);
    this.lastCheck = Date.now();
    if (!st || st.ino !== this.ino) this.lostFlag = true;
    return !this.lostFlag;
  }

  /** Re-checks ownership when the last check is older than a heartbeat (an event-loop stall). */
  async checkedRecently(): Promise<boolean> {
    if (Date.now() - this.lastCheck < HEARTBEAT_MS) return !this.lostFlag;
    return this.stillMine();
  }

  /** Publishes the size and type once the upstream answered, for followers' Content-Length. */
  async publish(size: number | undefined, mediaType: string | undefined): Promise<void> {
    this.info = { ...this.info, ...(size !== undefined ? { size } : {}), ...(mediaType ? { mediaType } : {}) };
    // Overwritten in place (same inode, so ownership checks still hold); a follower that reads a
    // half-written file just retries on its next tick.
    if (await this.stillMine()) await writeFile(this.path, JSON.stringify(this.info));
  }

  /** Drops the claim (after the commit, or after a failure); never removes someone else's. */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (await this.stillMine()) await unlink(this.path).catch(() => undefined);
    this.lostFlag = true;
    this.onReleased();
  }
}

export class ClaimDirectory {
  readonly dir: string;
  private readonly host = hostname();
  /** Tokens of the claims this process holds (to tell them from a previous incarnation's). */
  private readonly held = new Set<string>();

  constructor(root: string) {
    this.dir = join(root, "claims");
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  pathOf(hex: string): string {
    return join(this.dir, hex);
  }

  /** Tries to become the one process filling `hex`; undefined when another process holds it. */
  async acquire(hex: string, temp: string): Promise<OwnedClaim | undefined> {
    const path = this.pathOf(hex);
    const info: ClaimInfo = { token: randomBytes(8).toString("hex"), pid: process.pid, host: this.host, temp };
    let fh;
    try {
      fh = await open(path, "wx");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return undefined;
      throw err;
    }
    try {
      await fh.writeFile(JSON.stringify(info));
      const st = await fh.stat();
      this.held.add(info.token);
      return new OwnedClaim(path, info, st.ino, () => this.held.delete(info.token));
    } finally {
      await fh.close();
    }
  }

  async read(hex: string): Promise<ClaimState> {
    const path = this.pathOf(hex);
    const st = await stat(path).catch(() => undefined);
    if (!st) return { kind: "none" };
    let info: ClaimInfo | undefined;
    try {
      info = JSON.parse(await readFile(path, "utf8")) as ClaimInfo;
    } catch {
      info = undefined; // being written, or gone meanwhile
    }
    // The key names this claim for a takeover; a claim torn by a crash mid-write has no token,
    // so its inode stands in.
    const key = info?.token ?? `i${st.ino}`;
    const stale = Date.now() - st.mtimeMs > STALE_MS || (info !== undefined && this.ownerGone(info));
    return stale ? { kind: "stale", info, key } : { kind: "live", info, key };
  }

  /**
   * A claim of this host whose process is gone is stale at once (a restart after a crash need not
   * wait for the heartbeat to age). Our own pid on a claim we do not hold is a previous
   * incarnation (a container restarted as PID 1 again).
   */
  private ownerGone(info: ClaimInfo): boolean {
    if (info.host !== this.host) return false;
    if (info.pid === process.pid) return !this.held.has(info.token);
    try {
      process.kill(info.pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === "ESRCH";
    }
  }

  /**
   * Replaces a stale claim with ours, keeping its temp file (the caller continues it). One winner
   * per stale claim: the O_EXCL takeover file named after the stale token. Undefined when we lost
   * the race, the claim changed, or it is no longer stale.
   */
  async takeOver(hex: string, staleKey: string, temp: string): Promise<OwnedClaim | undefined> {
    const guard = `${this.pathOf(hex)}.takeover.${staleKey}`;
    try {
      await (await open(guard, "wx")).close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return undefined;
      throw err;
    }
    try {
      const now = await this.read(hex);
      if (now.kind !== "stale" || now.key !== staleKey) return undefined;
      await unlink(this.pathOf(hex)).catch(() => undefined);
      return await this.acquire(hex, temp);
    } finally {
      await unlink(guard).catch(() => undefined);
    }
  }

  /** Takeover guards left by a process that died while taking over (else that claim stays stuck). */
  async removeStaleGuards(): Promise<void> {
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (!name.includes(".takeover.")) continue;
      const st = await stat(join(this.dir, name)).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > STALE_MS) await unlink(join(this.dir, name)).catch(() => undefined);
    }
  }

  /**
   * Claims stale for longer than `olderThanMs` that nobody took over (their digest was not asked
   * for again; 0 at start: every stale claim): dropped with their temp files, through the same
   * one-winner takeover.
   */
  async removeAbandoned(olderThanMs: number): Promise<void> {
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (name.includes(".")) continue;
      const st = await stat(join(this.dir, name)).catch(() => undefined);
      if (!st || Date.now() - st.mtimeMs <= olderThanMs) continue;
      const state = await this.read(name);
      if (state.kind !== "stale") continue;
      const temp = state.info?.temp;
      const taken = await this.takeOver(name, state.key, temp ?? "");
      if (!taken) continue;
      await taken.release();
      if (temp?.startsWith(`${join(this.dir, "..", "tmp")}/`)) await unlink(temp).catch(() => undefined);
    }
  }

  /** Temp files some live claim still writes (the sweeper leaves them alone). */
  async liveTemps(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (name.includes(".")) continue;
      const s = await this.read(name);
      if (s.kind !== "none" && s.info) out.add(s.info.temp);
    }
    return out;
  }
}
