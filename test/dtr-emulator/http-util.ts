// Small HTTP helpers shared by the emulator's API and registry handlers.
import type { IncomingMessage, ServerResponse } from "node:http";

/** Per-request facts the handlers fill in and the server writes to the request log. */
export interface RequestNotes {
  user?: string;
  redirected: boolean;
  location?: string;
  signed: boolean;
  body?: unknown;
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** DTR's API error body: `{"errors":[{"code","message"}]}`. */
export function sendDtrError(res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { errors: [{ code, message }] });
}

/** The registry's (distribution/OCI) error body, which also carries `detail`. */
export function sendRegistryError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { errors: [{ code, message, detail: null }] }, { "Docker-Distribution-API-Version": "registry/2.0", ...headers });
}

export interface BasicCredentials {
  readonly username: string;
  readonly secret: string;
}

export function parseBasic(header: string | undefined): BasicCredentials | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? "");
  if (match === null || match[1] === undefined) return undefined;
  const decoded = Buffer.from(match[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon <= 0) return undefined;
  return { username: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}

export function parseBearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1];
}

const MAX_BODY = 64 * 1024;

export class BodyTooLargeError extends Error {
  readonly code = "BODY_TOO_LARGE";
}

/** Reads a small request body (API writes only); refuses anything over 64 KiB. */
export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY) throw new BodyTooLargeError("request body over 64 KiB");
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
