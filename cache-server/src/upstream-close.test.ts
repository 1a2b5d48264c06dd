// Issue 9, finding 3: an upstream that ends its answers with `Connection: close` must never crash
// the cache. undici 7 hit an uncatchable `assert(!this.paused)` (nodejs/undici#5360) when the
// socket ended while its parser was paused by back-pressure (here: the fill waiting on its disk
// write, and downstream readers that read slowly); the process died with every download in
// flight. The cache runs as a child process so such a crash is counted instead of killing the
// test runner; a crashed cache is restarted so the count covers the whole run.
import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "./clock.js";
import { digestOf } from "./names.js";
import { BlobStore } from "./store.js";
import { bundleChildCache, startChildCache, type ChildCache, type ChildExit } from "./testing/child-cache.js";
import { ClosingUpstream, type ClosingAnswer, type ClosingBlob } from "./testing/closing-upstream.js";
import { testConfigText } from "./testing/config-text.js";

const FILLS = 1000;
const CONCURRENCY = 16;
/** Past this many crashes the run stops: the verdict is already clear. */
const MAX_CRASHES = 20;
/** Blob sizes 16 KiB .. 144 KiB: several socket reads each, so the parser pauses mid-body. */
const MIN_SIZE = 16 * 1024;
const SIZE_SPAN = 128 * 1024;
/** Slow readers take a break of SLOW_PAUSE_MS after every SLOW_STEP bytes. */
const SLOW_STEP = 64 * 1024;
const SLOW_PAUSE_MS = 3;
const REPO = "team/closing";

interface Planned {
  readonly index: number;
  readonly digest: string;
  readonly answer: ClosingAnswer;
  readonly slowReader: boolean;
  readonly blob: () => ClosingBlob;
}

/** Bodies are cut from one random pool (plus a unique prefix) and rebuilt on demand, not kept. */
function plan(): Planned[] {
  const pool = randomBytes(MIN_SIZE + SIZE_SPAN + 1024 * 1024);
  const answers: ClosingAnswer[] = ["truncated", "whole", "pieces", "whole", "http10", "truncated", "pieces", "whole", "whole", "pieces"];
  return Array.from({ length: FILLS }, (_, index) => {
    const size = MIN_SIZE + ((index * 7919) % SIZE_SPAN);
    const offset = (index * 104_729) % (pool.length - size);
    const bytesOf = (): Buffer => Buffer.concat([Buffer.from(`blob ${index} of the closing upstream\n`), pool.subarray(offset, offset + size)]);
    const answer = answers[index % answers.length] ?? "whole";
    const bytes = bytesOf();
    // a truncated answer stops somewhere between 10% and 90% of its announced length
    const sent = Math.floor(bytes.length * (0.1 + ((index * 37) % 80) / 100));
    return { index, digest: digestOf(bytes), answer, slowReader: index % 3 === 0, blob: () => ({ bytes: bytesOf(), answer, sent }) };
  });
}

interface Outcome {
  readonly status: number;
  /** The response ended as HTTP says it should (not cut off, no socket error). */
  readonly clean: boolean;
  readonly body: Buffer;
  readonly error?: string;
}

/** One GET; a slow reader starts paused and pauses again after every SLOW_STEP bytes. */
function fetchBlob(url: string, slow: boolean): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (o: Outcome): void => {
      if (settled) return;
      settled = true;
      resolve(o);
    };
    const req = request(url, { agent: false }, (res) => {
      const parts: Buffer[] = [];
      let sinceBreak = 0;
      const status = res.statusCode ?? 0;
      const pauseFor = (ms: number): void => {
        res.pause();
        setTimeout(() => res.resume(), ms);
      };
      if (slow) pauseFor(SLOW_PAUSE_MS * 5);
      res.on("data", (chunk: Buffer) => {
        parts.push(chunk);
        sinceBreak += chunk.length;
        if (slow && sinceBreak >= SLOW_STEP) {
          sinceBreak = 0;
          pauseFor(SLOW_PAUSE_MS);
        }
      });
      res.on("end", () => done({ status, clean: true, body: Buffer.concat(parts) }));
      res.on("error", (err) => done({ status, clean: false, body: Buffer.concat(parts), error: err.message }));
      res.on("close", () => done({ status, clean: false, body: Buffer.concat(parts), error: "closed before the end" }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error("no progress for 30 s")));
    req.on("error", (err) => done({ status: 0, clean: false, body: Buffer.alloc(0), error: err.message }));
    req.end();
  });
}

/** Keeps one cache child running: a crash is recorded and the cache restarted (up to MAX_CRASHES). */
class Supervisor {
  readonly crashes: ChildExit[] = [];
  private current: Promise<ChildCache> | undefined;
  private stopping = false;

  constructor(
    private readonly bundle: string,
    private readonly configFile: string,
  ) {}

  get gaveUp(): boolean {
    return this.crashes.length >= MAX_CRASHES;
  }

  async url(): Promise<string> {
    if (!this.current) this.start();
    return (await this.current!).url;
  }

  private start(): void {
    this.current = startChildCache(this.bundle, this.configFile);
    void this.current.then((cache) =>
      cache.exited.then((exit) => {
        if (this.stopping) return;
        this.crashes.push(exit);
        if (!this.gaveUp) this.start();
      }),
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await (await this.current)?.stop();
  }
}

describe("an upstream that closes the connection after every answer", () => {
  const blobs = plan();
  const byDigest = new Map(blobs.map((b) => [b.digest, b]));
  const upstream = new ClosingUpstream((digest) => byDigest.get(digest)?.blob());
  let work = "";
  let root = "";
  let supervisor: Supervisor;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "cache-close-"));
    root = join(work, "root");
    const configFile = join(work, "config.yml");
    await writeFile(configFile, testConfigText({ root, upstreams: [await upstream.start()] }));
    supervisor = new Supervisor(await bundleChildCache(work), configFile);
  }, 60_000);

  afterAll(async () => {
    await supervisor?.stop();
    await upstream.stop();
    await rm(work, { recursive: true, force: true });
  });

  it(`${FILLS} fills (good and truncated answers, slow readers): no crash, good bytes served and kept, truncated never`, async () => {
    const outcomes = new Map<string, Outcome>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < blobs.length && !supervisor.gaveUp) {
        const b = blobs[next++]!;
        outcomes.set(b.digest, await fetchBlob(`${await supervisor.url()}/v2/${REPO}/blobs/${b.digest}`, b.slowReader));
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await supervisor.stop();

    const crashes = supervisor.crashes;
    expect(crashes.length, `the cache crashed ${crashes.length} time(s) in ${outcomes.size} fills; first:\n${crashes[0]?.stderr.slice(-1500)}`).toBe(0);
    expect(outcomes.size).toBe(FILLS);
    expect(upstream.blobGets).toBeGreaterThanOrEqual(FILLS);

    const good = blobs.filter((b) => b.answer !== "truncated");
    const truncated = blobs.filter((b) => b.answer === "truncated");
    const badGood = good.filter((b) => {
      const o = outcomes.get(b.digest);
      return !o || o.status !== 200 || !o.clean || digestOf(o.body) !== b.digest;
    });
    expect(badGood.map((b) => `${b.index} (${b.answer}): ${JSON.stringify({ ...outcomes.get(b.digest), body: outcomes.get(b.digest)?.body.length })}`)).toEqual(
      [],
    );
    const cleanTruncated = truncated.filter((b) => {
      const o = outcomes.get(b.digest);
      return o?.status === 200 && o.clean;
    });
    expect(cleanTruncated.map((b) => b.index)).toEqual([]);

    // What the store holds, as the cache itself sees it when it starts again on this root.
    const store = new BlobStore(root, systemClock);
    await store.open();
    expect(truncated.filter((b) => store.getBlob(b.digest)).map((b) => b.index)).toEqual([]);
    expect(good.filter((b) => !store.getBlob(b.digest)).map((b) => b.index)).toEqual([]);
    store.closeHandles();
  }, 120_000);
});
