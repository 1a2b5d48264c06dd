// The one place the controller's pino logger is built. Redaction is configuration, not care:
// any field that could carry a credential is censored wherever it appears. What it builds is the
// package's one logger interface (../logger.ts), which every part takes; the return type says so,
// so a pino whose shape stopped fitting it would fail the build here, not at some call site.
import { pino, type Logger as PinoLogger, type DestinationStream } from "pino";
import type { Logger } from "../logger.js";

export const REDACTED_PATHS = [
  "password",
  "*.password",
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "httpSecret",
  "*.httpSecret",
  "key",
  "*.key",
  "privateKey",
  "*.privateKey",
];

export type LogLevel = "debug" | "info" | "warn" | "error";
/** text: one readable line per record (a terminal); json: pino's JSON lines (collectors, the stack). */
export type LogFormat = "text" | "json";

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const OMITTED = new Set(["level", "time", "msg", "pid", "hostname", "component"]);

function textValue(value: unknown): string {
  if (typeof value === "string" && /^[^\s"=]+$/.test(value)) return value;
  return JSON.stringify(value) ?? String(value);
}

/** One pino JSON record as `2026-11-28T10:16:31.123Z INFO  message key=value ...`. */
export function formatTextLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith("\n") ? json : `${json}\n`;
  }
  const time = typeof record["time"] === "number" ? new Date(record["time"]).toISOString() : String(record["time"] ?? "");
  const level = (LEVEL_NAMES[Number(record["level"])] ?? String(record["level"])).padEnd(5);
  const fields = Object.entries(record)
    .filter(([k]) => !OMITTED.has(k))
    .map(([k, v]) => `${k}=${textValue(v)}`);
  return `${[time, level, String(record["msg"] ?? ""), ...fields].filter((x) => x !== "").join(" ")}\n`;
}

/** A pino destination that writes text lines to `out` (stderr by default). */
export function textDestination(out: { write(text: string): unknown } = process.stderr): DestinationStream {
  return {
    write: (chunk: string) =>
      void out.write(
        chunk
          .split("\n")
          .filter((l) => l !== "")
          .map(formatTextLine)
          .join(""),
      ),
  };
}

/** text when stderr is a terminal, JSON otherwise (a service's logs go to a collector). */
export function defaultLogFormat(isTty: boolean = process.stderr.isTTY === true): LogFormat {
  return isTty ? "text" : "json";
}

export function createLogger(
  level: LogLevel,
  destination?: DestinationStream,
  format: LogFormat = destination ? "json" : defaultLogFormat(),
): PinoLogger & Logger {
  const options = { level, base: { component: "dtrcache-controller" }, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } };
  if (format === "text") return pino(options, textDestination(destination ?? process.stderr));
  return pino(options, destination ?? pino.destination(2));
}
