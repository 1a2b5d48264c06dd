// The one place the controller's pino logger is built. Redaction is configuration, not care:
// any field that could carry a credential is censored wherever it appears.
import { pino, type Logger as PinoLogger, type DestinationStream } from "pino";

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

export function createLogger(level: LogLevel, destination?: DestinationStream): PinoLogger {
  return pino({ level, base: { component: "dtrcache-controller" }, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } }, destination ?? pino.destination(2));
}
