import { describe, expect, it } from "vitest";
import { memoryLogger } from "../logger.js";
import { FakeSwarm } from "../swarm/fake.js";
import { LeaderElector, LeaseHeldError } from "./elector.js";
import { readLease } from "./record.js";

function clock(start = Date.UTC(2026, 0, 1)) {
  let t = start;
  return { now: () => new Date(t), advance: (ms: number) => (t += ms) };
}

describe("LeaderElector", () => {
  it("one leader per owner id; the standby takes over only after the record stayed unchanged for the duration", async () => {
    const swarm = new FakeSwarm();
    const c = clock();
    const a = new LeaderElector({ swarm, owner: "o", identity: "a", now: c.now, logger: memoryLogger() });
    const b = new LeaderElector({ swarm, owner: "o", identity: "b", now: c.now, logger: memoryLogger() });
    expect(await a.tryAcquireOrRenew()).toBe("leader");
    expect(await b.tryAcquireOrRenew()).toBe("standby");
    expect(b.status()).toMatchObject({ role: "standby", holder: "a", message: "standby: lease held by a" });
    // a keeps renewing: b never takes over.
    for (let i = 0; i < 10; i += 1) {
      c.advance(2_000);
      expect(await a.tryAcquireOrRenew()).toBe("leader");
      expect(await b.tryAcquireOrRenew()).toBe("standby");
    }
    // a dies: b sees the same record for 10 s, then takes it.
    c.advance(2_000);
    expect(await b.tryAcquireOrRenew()).toBe("standby");
    c.advance(7_000);
    expect(await b.tryAcquireOrRenew()).toBe("standby");
    c.advance(1_000);
    expect(await b.tryAcquireOrRenew()).toBe("leader");
    expect((await readLease(swarm, "o"))?.holder).toBe("b");
    // a comes back: its renewal finds the record taken.
    expect(await a.tryAcquireOrRenew()).toBe("standby");
  });

  it("two candidates racing for an expired lease: the version check lets exactly one win", async () => {
    const swarm = new FakeSwarm();
    const c = clock();
    const dead = new LeaderElector({ swarm, owner: "o", identity: "dead", now: c.now, logger: memoryLogger() });
    await dead.tryAcquireOrRenew();
    const x = new LeaderElector({ swarm, owner: "o", identity: "x", now: c.now, logger: memoryLogger() });
    const y = new LeaderElector({ swarm, owner: "o", identity: "y", now: c.now, logger: memoryLogger() });
    await x.tryAcquireOrRenew();
    await y.tryAcquireOrRenew();
    c.advance(10_000);
    const roles = await Promise.all([x.tryAcquireOrRenew(), y.tryAcquireOrRenew()]);
    expect(roles.filter((r) => r === "leader")).toHaveLength(1);
  });

  it("a one-shot refuses while another holder is live, naming it; release hands over at once", async () => {
    const swarm = new FakeSwarm();
    const c = clock();
    const running = new LeaderElector({ swarm, owner: "o", identity: "host/1/run", now: c.now, logger: memoryLogger() });
    await running.tryAcquireOrRenew();
    const once = new LeaderElector({ swarm, owner: "o", identity: "shell", now: c.now, logger: memoryLogger() });
    const refused = await once.acquireOnce().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LeaseHeldError);
    expect((refused as Error).message).toMatch(/host\/1\/run/);
    await running.release();
    await once.acquireOnce();
    expect((await readLease(swarm, "o"))?.holder).toBe("shell");
  });

  it("a leader that finds the record taken calls onLost and stops renewing", async () => {
    const swarm = new FakeSwarm();
    const a = new LeaderElector({ swarm, owner: "o", identity: "a", renewMs: 5, logger: memoryLogger() });
    await a.acquire();
    const record = await readLease(swarm, "o");
    if (!record) throw new Error("no record");
    await swarm.updateConfigLabels(record.configId, { index: record.version }, "dtrcache-lease-o", {
      "io.dtrcache.lease": "v1",
      "io.dtrcache.lease.owner": "o",
      "io.dtrcache.lease.holder": "intruder",
      "io.dtrcache.lease.seq": "99",
    });
    const reason = await new Promise<string>((resolve) => a.keepRenewing(resolve));
    expect(reason).toMatch(/taken by intruder/);
    expect(a.status().role).toBe("stopped");
  });
});
