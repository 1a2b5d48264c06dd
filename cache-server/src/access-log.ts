// The per-request access log line, written straight to the logger's destination. A hit is cheap
// enough that pino's general path was ~8% of a manifest-by-digest hit's CPU (a child logger per
// request, redaction over every line, generic serialization): this line has a fixed shape, so it
// is built as one string here. Its fields are chosen so that it never needs redaction: the path
// without its query (DTR's signed redirect queries are credentials), no headers at all.
// The line has the same format as every other line of the logger (level, time, the logger's
// bindings, msg), so log readers see no difference.
import { pino, type Logger } from "pino";

/** What one access log line reports. */
export interface AccessEntry {
  readonly requestId: string;
  readonly method: string | undefined;
  /** The request path, never its query. */
  readonly path: string;
  readonly status: number;
  readonly cache: string | undefined;
  readonly bytes: number;
  readonly outcome: "complete" | "aborted" | "destroyed";
  readonly ms: number;
}

interface Destination {
  write(line: string): unknown;
}

const INFO = 30;

export class AccessLog {
  private readonly out: Destination;
  /** Lines of this event-loop turn, handed to the destination together (see write()). */
  private pending: string[] = [];
  private scheduled = false;
  /** The logger's bindings as it renders them: `,"pid":1,"hostname":"h","service":"cache-server"`. */
  private readonly bindings: string;

  constructor(private readonly logger: Logger) {
    const l = logger as unknown as Record<symbol, unknown>;
    this.out = l[pino.symbols.streamSym] as Destination;
    this.bindings = (l[pino.symbols.chindingsSym] as string | undefined) ?? "";
  }

  write(e: AccessEntry): void {
    if (!this.logger.isLevelEnabled("info")) return;
    // Strings that come from the client (request id, method, path) go through JSON.stringify for
    // escaping; the rest are numbers or one of a few fixed words.
    const cache = e.cache === undefined ? "" : `,"cache":"${e.cache}"`;
    // Lines are batched per event-loop turn: pino's destination measures the UTF-8 length of
    // its last pending chunk (up to 16 KiB) on every write, so one write per line cost more than the rest of
    // a manifest hit (A/B in docs/bench-cache.md). A line waits at most until the end of the
    // turn that logged it; flush() writes what is pending at shutdown.
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
    this.pending.push(
      `{"level":${INFO},"time":${Date.now()}${this.bindings},"requestId":${JSON.stringify(e.requestId)},"method":${JSON.stringify(e.method ?? "")},` +
        `"path":${JSON.stringify(e.path)},"status":${e.status}${cache},"bytes":${e.bytes},"outcome":"${e.outcome}","ms":${e.ms},"msg":"request"}\n`,
    );
  }

  /** Hands every pending line to the destination now. */
  readonly flush = (): void => {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const lines = this.pending;
    this.pending = [];
    this.out.write(lines.length === 1 ? (lines[0] as string) : lines.join(""));
  };
}
