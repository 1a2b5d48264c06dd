// The logger, configured in one place: JSON lines, secrets removed by configuration.
import { pino, type Logger, type DestinationStream } from "pino";

export const REDACT_PATHS = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "req.headers.authorization",
  "req.headers.cookie",
  "secret",
  "*.secret",
  "http.secret",
  "query",
  "*.query",
  "password",
  "*.password",
  "token",
  "*.token",
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, base: { service: "cache-server" }, redact: { paths: REDACT_PATHS, censor: "[redacted]" } }, destination);
}
