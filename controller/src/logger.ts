// The logger shape the controller needs: pino's, narrowed. Entry points pass a pino instance
// (configured with redaction); tests pass a recording one. Messages are fixed strings, data goes
// in the first argument.
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};

export interface LogEntry {
  readonly level: "debug" | "info" | "warn" | "error";
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

/** Collects entries in memory (tests assert on messages and on the absence of secrets). */
export function memoryLogger(entries: LogEntry[] = [], bindings: Record<string, unknown> = {}): Logger & { entries: LogEntry[] } {
  const at =
    (level: LogEntry["level"]) =>
    (fields: Record<string, unknown>, message: string): void => {
      entries.push({ level, message, fields: { ...bindings, ...fields } });
    };
  return { entries, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: (b) => memoryLogger(entries, { ...bindings, ...b }) };
}
