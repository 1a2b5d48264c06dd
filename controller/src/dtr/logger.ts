// The logging surface the DTR side needs; a pino logger satisfies it. The entry file builds the
// real logger (with redaction configured) and hands it in.
export interface DtrLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export const silentLogger: DtrLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined };
