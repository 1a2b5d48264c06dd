// Who trusts the store at start when several processes share it (sessions.ts), and when a claim
// of a process that is gone counts as stale (claim.ts). The case that matters most: a container
// restarted after a SIGKILL runs as PID 1 again with the same hostname, so "that pid is alive"
// must not make its previous incarnation's session or claim look alive.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, stat, utimes, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ClaimDirectory } from "./claim.js";
import { systemClock } from "./clock.js";
import { digestOf } from "./names.js";
import { BlobStore } from "./store.js";

const roots: string[] = [];
afterEach(async () => {
  while (roots.length) await rm(roots.pop() ?? "", { recursive: true, force: true });
});

async function rootWithBlob(): Promise<{ root: string; digest: string }> {
  const root = await mkdtemp(join(tmpdir(), "sessions-"));
  roots.push(root);
  const bytes = randomBytes(1024);
  const digest = digestOf(bytes);
  const hex = digest.slice(7);
  await mkdir(join(root, "blobs", "sha256", hex.slice(0, 2)), { recursive: true });
  await writeFile(join(root, "blobs", "sha256", hex.slice(0, 2), hex), bytes);
  await mkdir(join(root, "sessions"), { recursive: true });
  return { root, digest };
}

const exists = (p: string): Promise<boolean> =>
  stat(p).then(
    () => true,
    () => false,
  );

describe("sessions: trusting a shared store at start", () => {
  it("a session left with OUR pid (a restarted PID 1) is a dead previous incarnation: every blob is doubted", async () => {
    const { root, digest } = await rootWithBlob();
    await writeFile(join(root, "sessions", `${process.pid}-0badc0de@${hostname()}`), "x");
    const store = new BlobStore(root, systemClock);
    await store.open();
    expect(store.startedClean).toBe(false);
    expect(store.isUnverified(digest)).toBe(true);
    expect(await exists(join(root, "doubted"))).toBe(true);
    await store.sessions.unregister();
  });

  it("another live process on the store (no marker, no dead session): trusted without hashing", async () => {
    const { root, digest } = await rootWithBlob();
    // The test runner's parent process is alive for sure.
    await writeFile(join(root, "sessions", `${process.ppid}-0badc0de@${hostname()}`), "x");
    const store = new BlobStore(root, systemClock);
    await store.open();
    expect(store.startedClean).toBe(true);
    expect(store.isUnverified(digest)).toBe(false);
    // Not the last one out: no clean-shutdown marker while the other runs.
    expect(await store.markClean()).toBe(false);
  });

  it("a claim with our pid that this process does not hold is stale at once; one we hold is live", async () => {
    const { root } = await rootWithBlob();
    const claims = new ClaimDirectory(root);
    await claims.init();
    const hex = "ab".repeat(32);
    await writeFile(claims.pathOf(hex), JSON.stringify({ token: "previous", pid: process.pid, host: hostname(), temp: join(root, "tmp", "x.part") }));
    expect((await claims.read(hex)).kind).toBe("stale");
    const other = "cd".repeat(32);
    const held = await claims.acquire(other, join(root, "tmp", "y.part"));
    expect(held).toBeDefined();
    expect((await claims.read(other)).kind).toBe("live");
    await held?.release();
    expect((await claims.read(other)).kind).toBe("none");
  });

  it("another node's claim is judged by its heartbeat only: live while fresh, stale after 10 s, taken over once", async () => {
    const { root } = await rootWithBlob();
    const claims = new ClaimDirectory(root);
    await claims.init();
    const hex = "ef".repeat(32);
    const temp = join(root, "tmp", "z.part");
    await writeFile(claims.pathOf(hex), JSON.stringify({ token: "remote", pid: 1, host: "another-node", temp }));
    expect((await claims.read(hex)).kind).toBe("live");
    const old = new Date(Date.now() - 11_000);
    await utimes(claims.pathOf(hex), old, old);
    const state = await claims.read(hex);
    expect(state.kind).toBe("stale");
    if (state.kind !== "stale") return;
    const [first, second] = await Promise.all([claims.takeOver(hex, state.key, temp), claims.takeOver(hex, state.key, temp)]);
    // One winner per stale claim; the winner continues the same temp file.
    expect([first, second].filter(Boolean)).toHaveLength(1);
    expect((first ?? second)?.temp).toBe(temp);
    expect((await claims.read(hex)).kind).toBe("live");
    await (first ?? second)?.release();
  });

  it("a claim abandoned for over an hour (its digest never asked for again) goes with its temp file", async () => {
    const { root } = await rootWithBlob();
    const claims = new ClaimDirectory(root);
    await claims.init();
    await mkdir(join(root, "tmp"), { recursive: true });
    const hex = "12".repeat(32);
    const temp = join(root, "tmp", "abandoned.part");
    await writeFile(temp, "partial");
    await writeFile(claims.pathOf(hex), JSON.stringify({ token: "gone", pid: 1, host: "another-node", temp }));
    const old = new Date(Date.now() - 2 * 3600_000);
    await utimes(claims.pathOf(hex), old, old);
    await claims.removeAbandoned(3600_000);
    expect(await exists(claims.pathOf(hex))).toBe(false);
    expect(await exists(temp)).toBe(false);
  });
});
