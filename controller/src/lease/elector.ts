// Leader election over the lease record (record.ts), in the manner of client-go's leaderelection:
// a candidate renews every `renewMs`; another candidate takes over only once it has seen the
// record unchanged for `durationMs` by its OWN clock (so clock skew between managers does not
// shorten or lengthen the lease), and only through a version-checked update, so of two
// candidates at most one wins. A leader that cannot renew within `durationMs` — or finds the
// record taken — has lost, and must stop writing at once (onLost).
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { SwarmApi } from "../swarm/api.js";
import { isSwarmError } from "../swarm/errors.js";
import type { Logger } from "../logger.js";
import { sleep, type Clock, type Timer } from "../runner/clock.js";
import { isLive, leaseConfigName, readLease, recordLabels, type LeaseRecord } from "./record.js";

export interface ElectorOptions {
  readonly swarm: SwarmApi;
  readonly owner: string;
  /** Unique per process: shown to others as the holder. */
  readonly identity?: string;
  readonly durationMs?: number;
  readonly renewMs?: number;
  readonly now?: () => Date;
  /** Time and the renewal timers (tests: FakeClock); `now`, when given, still tells the time. */
  readonly clock?: Clock;
  readonly logger: Logger;
}

/**
 * The process's timers, kept referenced (unlike runner/clock.ts's systemClock): a standby waiting
 * for the lease, or a leader renewing it, is what keeps a `dtrcache run` process alive.
 */
const leaseClock: Clock = {
  now: () => new Date(),
  setTimer(fn, ms) {
    const handle = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(handle) };
  },
};

export type LeaseRole = "leader" | "standby" | "stopped";

export interface LeaseStatus {
  readonly role: LeaseRole;
  readonly identity: string;
  /** Who holds the lease as last seen ("" when free or unknown). */
  readonly holder: string;
  readonly since: string;
  readonly message?: string;
}

export class LeaseHeldError extends Error {
  override readonly name = "LeaseHeldError";
  readonly code = "LEASE_HELD";
  constructor(
    readonly holder: string,
    readonly renewedAt: string,
  ) {
    super(`another controller holds the lease for this owner id: ${holder} (renewed ${renewedAt}); refusing to write`);
  }
}

export function defaultIdentity(): string {
  return `${hostname()}/${process.pid}/${randomBytes(3).toString("hex")}`;
}

export class LeaderElector {
  readonly identity: string;
  private readonly swarm: SwarmApi;
  private readonly owner: string;
  private readonly durationMs: number;
  private readonly renewMs: number;
  private readonly now: () => Date;
  private readonly clock: Clock;
  private readonly logger: Logger;
  /** The record as last seen and when (by our clock) it last changed. */
  private observed: { key: string; at: number } | undefined;
  private record: LeaseRecord | undefined;
  private lastRenew = 0;
  private state: LeaseStatus;
  private timer: Timer | undefined;
  private stopped = false;

  constructor(options: ElectorOptions) {
    this.swarm = options.swarm;
    this.owner = options.owner;
    this.identity = options.identity ?? defaultIdentity();
    this.durationMs = options.durationMs ?? 10_000;
    this.renewMs = options.renewMs ?? 2_000;
    this.clock = options.clock ?? leaseClock;
    this.now = options.now ?? (() => this.clock.now());
    this.logger = options.logger;
    this.state = { role: "standby", identity: this.identity, holder: "", since: this.now().toISOString(), message: "not yet acquired" };
  }

  status(): LeaseStatus {
    return this.state;
  }

  /**
   * One step: create, renew or take the lease if we may. Returns our role afterwards. Errors from
   * the engine propagate (the caller decides whether they cost the lease).
   */
  async tryAcquireOrRenew(): Promise<"leader" | "standby"> {
    const now = this.now();
    const record = await readLease(this.swarm, this.owner);
    this.record = record;
    if (!record) {
      try {
        await this.swarm.createConfig({
          name: leaseConfigName(this.owner),
          labels: recordLabels(this.owner, this.fields(now, 1, now.toISOString())),
          data: Buffer.from(`dtrcache lease for owner id ${this.owner}\n`),
        });
        return this.became("leader", now);
      } catch (error) {
        if (isSwarmError(error, "NAME_TAKEN")) return this.became("standby", now);
        throw error;
      }
    }
    const key = `${record.holder}|${record.seq}|${record.version}`;
    if (!this.observed || this.observed.key !== key) this.observed = { key, at: now.getTime() };
    const mine = record.holder === this.identity;
    const free = record.holder === "";
    const expired = now.getTime() - this.observed.at >= this.durationMs;
    if (!mine && !free && !expired) return this.became("standby", now);
    try {
      const acquiredAt = mine ? record.acquiredAt : now.toISOString();
      await this.swarm.updateConfigLabels(
        record.configId,
        { index: record.version },
        leaseConfigName(this.owner),
        recordLabels(this.owner, this.fields(now, record.seq + 1, acquiredAt)),
      );
      return this.became("leader", now);
    } catch (error) {
      // Someone else wrote first: they renewed (still alive) or took it; either way not ours.
      if (isSwarmError(error, "CONFLICT")) return this.became("standby", now);
      throw error;
    }
  }

  private fields(now: Date, seq: number, acquiredAt: string): { holder: string; renewedAt: string; acquiredAt: string; durationMs: number; seq: number } {
    return { holder: this.identity, renewedAt: now.toISOString(), acquiredAt, durationMs: this.durationMs, seq };
  }

  private became(role: "leader" | "standby", now: Date): "leader" | "standby" {
    if (role === "leader") this.lastRenew = now.getTime();
    const holder = role === "leader" ? this.identity : (this.record?.holder ?? "");
    if (this.state.role !== role || this.state.holder !== holder) {
      this.state = {
        role,
        identity: this.identity,
        holder,
        since: now.toISOString(),
        ...(role === "standby" ? { message: holder ? `standby: lease held by ${holder}` : "standby: lease being taken by another candidate" } : {}),
      };
      if (role === "leader") this.logger.info({ identity: this.identity, owner: this.owner }, "lease acquired: this controller is the leader");
      else this.logger.info({ identity: this.identity, holder, owner: this.owner }, "standby: another controller holds the lease; waiting");
    }
    return role;
  }

  /** Waits until this candidate leads (or `signal` aborts). */
  async acquire(signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (signal?.aborted || this.stopped) throw new Error("lease acquisition stopped");
      try {
        if ((await this.tryAcquireOrRenew()) === "leader") return;
      } catch (error) {
        this.logger.warn({ error: error instanceof Error ? error.message : String(error) }, "lease: cannot read or write the lease record; retrying");
      }
      // An abort ends the wait early; the loop's first line then reports it.
      await sleep(this.clock, this.renewMs, signal).catch(() => undefined);
    }
  }

  /**
   * Keeps renewing while leading. `onLost` runs once when the lease is gone — taken by another
   * candidate, or not renewed within its duration — and renewing stops.
   */
  keepRenewing(onLost: (reason: string) => void): void {
    const tick = async (): Promise<void> => {
      if (this.stopped) return;
      let reason: string | undefined;
      try {
        if ((await this.tryAcquireOrRenew()) !== "leader") reason = `the lease was taken by ${this.record?.holder || "another candidate"}`;
      } catch (error) {
        if (this.now().getTime() - this.lastRenew >= this.durationMs)
          reason = `could not renew the lease for ${this.durationMs} ms (${error instanceof Error ? error.message : String(error)})`;
      }
      if (this.stopped) return;
      if (reason !== undefined) {
        this.stopped = true;
        this.state = {
          role: "stopped",
          identity: this.identity,
          holder: this.record?.holder ?? "",
          since: this.now().toISOString(),
          message: `lease lost: ${reason}`,
        };
        this.logger.error({ identity: this.identity, reason }, "lease lost: stopping all writes");
        onLost(reason);
        return;
      }
      this.timer = this.clock.setTimer(() => void tick(), this.renewMs);
    };
    this.timer = this.clock.setTimer(() => void tick(), this.renewMs);
  }

  /** Stops renewing; a leader clears the holder so a standby takes over at once instead of after expiry. */
  async release(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    if (this.state.role !== "leader") return;
    this.state = { role: "stopped", identity: this.identity, holder: "", since: this.now().toISOString(), message: "released" };
    try {
      const record = await readLease(this.swarm, this.owner);
      if (record && record.holder === this.identity) {
        await this.swarm.updateConfigLabels(
          record.configId,
          { index: record.version },
          leaseConfigName(this.owner),
          recordLabels(this.owner, { holder: "", renewedAt: this.now().toISOString(), acquiredAt: "", durationMs: this.durationMs, seq: record.seq + 1 }),
        );
      }
    } catch (error) {
      this.logger.warn({ error: error instanceof Error ? error.message : String(error) }, "lease: release failed; it expires on its own");
    }
  }

  /**
   * For one-shot writers: take the lease unless another holder is live by its own renewal time
   * (a one-shot cannot afford to watch for a full lease duration). Throws LeaseHeldError naming it.
   */
  async acquireOnce(): Promise<void> {
    const record = await readLease(this.swarm, this.owner);
    if (record && record.holder !== this.identity && isLive(record, this.now())) throw new LeaseHeldError(record.holder, record.renewedAt);
    // A holder that is not live counts as expired at once for this candidate.
    if (record) this.observed = { key: `${record.holder}|${record.seq}|${record.version}`, at: this.now().getTime() - this.durationMs };
    if ((await this.tryAcquireOrRenew()) !== "leader") throw new LeaseHeldError(this.record?.holder ?? "another candidate", this.record?.renewedAt ?? "");
  }
}
