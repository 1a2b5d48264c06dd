// The CLI's side of the status endpoint: where it is, the bearer token, one GET with the failures
// mapped to exit codes. `status` and `describe` both ask through here, so both honour
// DTRCACHE_STATUS_URL / DTRCACHE_STATUS_TOKEN the same way. The token is sent, never printed.
import { readFileSync } from "node:fs";
import { CliError, EXIT } from "./exit.js";

export const DEFAULT_STATUS_URL = "http://127.0.0.1:9090";

/** The endpoint could not be asked; `tokenRefused` when it answered 401 (asking again will not help). */
export class StatusEndpointError extends CliError {
  constructor(
    message: string,
    readonly tokenRefused = false,
  ) {
    super(EXIT.unreachable, message);
  }
}

export function isTokenRefused(error: unknown): boolean {
  return error instanceof StatusEndpointError && error.tokenRefused;
}

export function readToken(file: string | undefined, env: string | undefined): string | undefined {
  if (file) return readFileSync(file, "utf8").trim();
  return env?.trim() || undefined;
}

/** GET `path` from the status endpoint at `base` and parse the JSON; exit 3 when it cannot answer. */
export async function getStatusJson<T>(base: string, path: string, token: string | undefined, timeoutMs = 10_000): Promise<T> {
  let response: Response;
  try {
    response = await fetch(new URL(path, base), { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    throw new StatusEndpointError(
      `cannot reach the status endpoint ${base}: ${error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error)}`,
    );
  }
  if (response.status === 401)
    throw new StatusEndpointError(`${base} requires a bearer token (--token-file or DTRCACHE_STATUS_TOKEN)${token ? "; the one given was refused" : ""}`, true);
  if (!response.ok) throw new StatusEndpointError(`${base}${path} answered ${response.status}`);
  return (await response.json()) as T;
}
