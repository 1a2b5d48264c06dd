// The controller's events kept in the swarm (issue 11, item 7 leftover): `describe` after a
// controller restart or a failover still shows what the previous leader did.
//
// Where: one Swarm config per owner id, `dtrcache.events.<owner>`, whose labels hold the events
// as compact JSON. A config's labels are the one part of it Swarm lets change, with the object's
// version as a precondition (as the lease record does), so the journal is rewritten in place: no
// create/remove churn, one write per flush. The name deliberately does not start with
// "dtrcache-": the store source reloads the spec on config events of that prefix.
//
// Bounds: the last `perCache` events of each cache (default 20, of the recorder's 50), and the
// JSON at most `maxBytes` (default 64 KiB; the oldest events go first) — Swarm keeps every object
// in its raft log, so the journal must stay small. Rate: a flush at most every `intervalMs`
// (default 10 s) and only when something was recorded since; nothing is written while idle.
// Only the leader flushes (only its recorder is fed); a standby reads the journal when it takes
// over. What is lost: the events of the last interval before a crash (a graceful stop flushes).
//
// Events hold names, codes and messages only (events/recorder.ts), never secret material; the
// journal adds nothing to them.
import { createHash } from "node:crypto";
import type { ControllerEvent, EventRecorder } from "../events/recorder.js";
import type { Labels, SwarmApi, SwarmConfig } from "../swarm/api.js";
import { isSwarmError } from "../swarm/errors.js";

export const EVENTS = "io.dtrcache.events";
export const EVENTS_OWNER = "io.dtrcache.events.owner";
export const EVENTS_DATA = "io.dtrcache.events.data";

export interface EventJournalOptions {
  readonly swarm: SwarmApi;
  readonly owner: string;
  readonly perCache?: number;
  readonly maxBytes?: number;
  readonly intervalMs?: number;
  /** Told about a failed flush (kept in memory; the next flush tries again). */
  readonly onError?: (error: unknown) => void;
}

export function journalConfigName(owner: string): string {
  const readable = `dtrcache.events.${owner}`;
  if (readable.length <= 64) return readable;
  return `dtrcache.events.${createHash("sha256").update(owner).digest("hex").slice(0, 20)}`;
}

/** The newest events that fit: `perCache` per cache, then the oldest dropped until under maxBytes. */
export function boundEvents(events: readonly ControllerEvent[], perCache: number, maxBytes: number): ControllerEvent[] {
  const byCache = new Map<string, ControllerEvent[]>();
  for (const e of events) byCache.set(e.cache ?? "", [...(byCache.get(e.cache ?? "") ?? []), e]);
  let kept = [...byCache.values()].flatMap((ring) => ring.slice(-perCache)).sort((a, b) => (a.lastTime < b.lastTime ? -1 : a.lastTime > b.lastTime ? 1 : 0));
  while (kept.length > 0 && Buffer.byteLength(JSON.stringify(kept)) > maxBytes) kept = kept.slice(Math.max(1, Math.ceil(kept.length / 10)));
  return kept;
}

function isEvent(value: unknown): value is ControllerEvent {
  if (typeof value !== "object" || value === null) return false;
  const e = value as Record<string, unknown>;
  return (
    (e["type"] === "Normal" || e["type"] === "Warning") &&
    (e["source"] === "swarm" || e["source"] === "dtr" || e["source"] === "reconcile") &&
    typeof e["reason"] === "string" &&
    typeof e["message"] === "string" &&
    typeof e["firstTime"] === "string" &&
    typeof e["lastTime"] === "string" &&
    typeof e["count"] === "number" &&
    (e["cache"] === undefined || typeof e["cache"] === "string")
  );
}

/** The events a journal config holds; a damaged or foreign label reads as none. */
export function parseJournal(config: SwarmConfig | undefined): ControllerEvent[] {
  const text = config?.labels[EVENTS_DATA];
  if (text === undefined) return [];
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed.filter(isEvent) : [];
  } catch {
    return [];
  }
}

export class EventJournal {
  private readonly name: string;
  private readonly perCache: number;
  private readonly maxBytes: number;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private flushing: Promise<void> = Promise.resolve();
  private detach: (() => void) | undefined;
  /** Writes made (for tests and the docs' numbers). */
  writes = 0;

  constructor(private readonly options: EventJournalOptions) {
    this.name = journalConfigName(options.owner);
    this.perCache = options.perCache ?? 20;
    this.maxBytes = options.maxBytes ?? 64 * 1024;
    this.intervalMs = options.intervalMs ?? 10_000;
  }

  private async find(): Promise<SwarmConfig | undefined> {
    const listed = (await this.options.swarm.listConfigs({ labels: [`${EVENTS}=v1`, `${EVENTS_OWNER}=${this.options.owner}`] })).find(
      (c) => c.name === this.name,
    );
    // inspect for the authoritative version (the update's precondition)
    return listed ? this.options.swarm.inspectConfig(listed.id) : undefined;
  }

  /** The events the journal holds now. */
  async load(): Promise<ControllerEvent[]> {
    return parseJournal(await this.find());
  }

  /**
   * Restores the journal into `recorder` and from then on persists it: a flush at most every
   * intervalMs after something was recorded. Returns how many events were restored.
   */
  async attach(recorder: EventRecorder): Promise<number> {
    const restored = await this.load().catch((error: unknown) => {
      this.options.onError?.(error);
      return [];
    });
    recorder.restore(restored);
    this.detach?.();
    this.detach = recorder.onRecord(() => this.schedule(recorder));
    return restored.length;
  }

  private schedule(recorder: EventRecorder): void {
    this.dirty = true;
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush(recorder);
    }, this.intervalMs);
    this.timer.unref?.();
  }

  /** Writes the recorder's events now if anything changed since the last write. Never throws. */
  flush(recorder: EventRecorder): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      try {
        await this.write(boundEvents(recorder.list(undefined, Number.MAX_SAFE_INTEGER), this.perCache, this.maxBytes));
      } catch (error) {
        this.dirty = true;
        this.options.onError?.(error);
      }
    });
    return this.flushing;
  }

  private async write(events: readonly ControllerEvent[]): Promise<void> {
    const labels: Labels = { [EVENTS]: "v1", [EVENTS_OWNER]: this.options.owner, [EVENTS_DATA]: JSON.stringify(events) };
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const current = await this.find();
      try {
        if (current === undefined) {
          // The data says what the object is to someone who inspects it; the events are in the labels.
          await this.options.swarm.createConfig({ name: this.name, labels, data: Buffer.from("dtrcache event journal: the events are in the labels\n") });
        } else {
          await this.options.swarm.updateConfigLabels(current.id, current.version, current.name, labels);
        }
        this.writes += 1;
        return;
      } catch (error) {
        // Another leader's last flush raced ours (a failover): read the new version and write again.
        if (!isSwarmError(error, "CONFLICT") && !isSwarmError(error, "NAME_TAKEN")) throw error;
      }
    }
  }

  /** Stops persisting without writing again (the lease is lost: the new leader owns the journal). */
  abandon(): void {
    this.detach?.();
    this.detach = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty = false;
  }

  /** Stops persisting after one last flush of what is pending (a graceful stop keeps everything). */
  async close(recorder: EventRecorder): Promise<void> {
    this.detach?.();
    this.detach = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush(recorder);
  }
}
