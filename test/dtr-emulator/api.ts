// DTR's /api/v0 surface that the controller uses: content cache registrations and per-user
// settings, with DTR's auth rules and error shape. Choices where dtr-facts.md says UNCONFIRMED
// are marked here and listed in README.md.
import type { IncomingMessage, ServerResponse } from "node:http";
import { readBody, parseBasic, sendDtrError, sendJson, type RequestNotes } from "./http-util.js";
import type { EmulatorState, EmulatorUser } from "./state.js";

const CACHES = /^\/api\/v0\/content_caches\/?$/;
const CACHE = /^\/api\/v0\/content_caches\/([^/]+)\/?$/;
const SETTINGS = /^\/api\/v0\/accounts\/([^/]+)\/settings\/?$/;

/** Handles /api/v0/*; answers 404 for API paths it does not know. */
export async function handleApi(state: EmulatorState, req: IncomingMessage, res: ServerResponse, path: string, notes: RequestNotes): Promise<void> {
  const user = authenticate(state, req, res, notes);
  if (user === undefined) return;
  const method = req.method ?? "GET";

  if (CACHES.test(path)) {
    if (method === "GET") return sendJson(res, 200, state.listCaches());
    if (method === "POST") return createCache(state, req, res, user, notes);
    return methodNotAllowed(res);
  }
  const cacheMatch = CACHE.exec(path);
  if (cacheMatch?.[1] !== undefined) {
    const id = decodeURIComponent(cacheMatch[1]);
    if (method === "GET") {
      // DTR's published API lets any active user read one registration, as it lets them list all.
      const cache = state.getCache(id);
      if (cache === undefined) return sendDtrError(res, 404, "NO_SUCH_CONTENT_CACHE", `no content cache with id ${id}`);
      return sendJson(res, 200, cache);
    }
    if (method === "DELETE") {
      if (!requireAdmin(user, res)) return;
      // 204 whether or not it existed: DELETE is idempotent in DTR's API.
      state.deleteCache(id);
      res.writeHead(204).end();
      return;
    }
    return methodNotAllowed(res);
  }
  const settingsMatch = SETTINGS.exec(path);
  if (settingsMatch?.[1] !== undefined) {
    const username = decodeURIComponent(settingsMatch[1]);
    // UNCONFIRMED who may read or change whose settings. Chosen: an admin may touch anyone's, an
    // ordinary user only their own (DTR's UI lets users pick their own cache); anyone else is
    // refused with 403 before the target's existence is revealed.
    if (!user.admin && user.username !== username) return sendDtrError(res, 403, "NOT_AUTHORIZED", "only admins may access another user's settings");
    const current = state.contentCacheOf(username);
    if (current === undefined) return sendDtrError(res, 404, "NO_SUCH_USER", `no user named ${username}`);
    if (method === "GET") return sendJson(res, 200, { ContentCacheUUID: current });
    if (method === "PATCH") return patchSettings(state, req, res, username, notes);
    return methodNotAllowed(res);
  }
  sendDtrError(res, 404, "NOT_FOUND", `no API route for ${method} ${path}`);
}

function authenticate(state: EmulatorState, req: IncomingMessage, res: ServerResponse, notes: RequestNotes): EmulatorUser | undefined {
  const credentials = parseBasic(req.headers.authorization);
  const user = credentials === undefined ? undefined : state.authenticate(credentials.username, credentials.secret);
  if (user === undefined) {
    sendDtrError(res, 401, "NOT_AUTHENTICATED", "authentication required: basic auth with a password or access token");
    return undefined;
  }
  notes.user = user.username;
  return user;
}

function requireAdmin(user: EmulatorUser, res: ServerResponse): boolean {
  if (user.admin === true) return true;
  sendDtrError(res, 403, "NOT_AUTHORIZED", "this call needs an admin account");
  return false;
}

function methodNotAllowed(res: ServerResponse): void {
  sendDtrError(res, 405, "METHOD_NOT_ALLOWED", "method not allowed on this resource");
}

/** Parses a JSON body and records it in the log; answers 400 itself when it is not JSON. */
async function jsonBody(
  req: IncomingMessage,
  res: ServerResponse,
  notes: RequestNotes,
  invalidCode: string,
): Promise<{ ok: true; value: unknown } | { ok: false }> {
  let text: string;
  try {
    text = await readBody(req);
  } catch {
    sendDtrError(res, 400, invalidCode, "request body too large");
    return { ok: false };
  }
  try {
    const value: unknown = JSON.parse(text);
    notes.body = value;
    return { ok: true, value };
  } catch {
    notes.body = text;
    sendDtrError(res, 400, invalidCode, "request body is not valid JSON");
    return { ok: false };
  }
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
  } catch {
    return false;
  }
}

async function createCache(state: EmulatorState, req: IncomingMessage, res: ServerResponse, user: EmulatorUser, notes: RequestNotes): Promise<void> {
  if (!requireAdmin(user, res)) return;
  // The 400 code for bad details is UNCONFIRMED; INVALID_CONTENT_CACHE is the emulator's choice.
  const body = await jsonBody(req, res, notes, "INVALID_CONTENT_CACHE");
  if (!body.ok) return;
  const value = body.value;
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return sendDtrError(res, 400, "INVALID_CONTENT_CACHE", "body must be a JSON object {name, host}");
  const record = value as Record<string, unknown>;
  const extra = Object.keys(record).filter((key) => key !== "name" && key !== "host");
  if (extra.length > 0) return sendDtrError(res, 400, "INVALID_CONTENT_CACHE", `unknown field(s): ${extra.join(", ")}`);
  if (typeof record.name !== "string" || record.name.trim() === "") return sendDtrError(res, 400, "INVALID_CONTENT_CACHE", "name is required");
  if (typeof record.host !== "string" || !isHttpUrl(record.host))
    return sendDtrError(res, 400, "INVALID_CONTENT_CACHE", "host is required and must be an http:// or https:// URL");
  // Name uniqueness is UNCONFIRMED: the emulator accepts duplicates (the weaker assumption), so
  // the controller has to cope with several registrations of one name.
  sendJson(res, 201, state.createCache(record.name, record.host));
}

async function patchSettings(state: EmulatorState, req: IncomingMessage, res: ServerResponse, username: string, notes: RequestNotes): Promise<void> {
  const body = await jsonBody(req, res, notes, "INVALID_USER_SETTINGS");
  if (!body.ok) return;
  const value = body.value;
  if (typeof value !== "object" || value === null || Array.isArray(value)) return sendDtrError(res, 400, "INVALID_USER_SETTINGS", "body must be a JSON object");
  // Go's encoding/json (what DTR uses) matches keys case-insensitively, so "contentCacheUUID",
  // "ContentCacheUUID" and any other casing all name the same field. Other settings fields are
  // not modelled; unknown keys are ignored as Go would.
  const entries = Object.entries(value as Record<string, unknown>).filter(([key]) => key.toLowerCase() === "contentcacheuuid");
  const last = entries.at(-1);
  if (last !== undefined) {
    const id = last[1];
    if (typeof id !== "string") return sendDtrError(res, 400, "INVALID_USER_SETTINGS", "contentCacheUUID must be a string");
    // "" clears the setting (UNCONFIRMED in dtr-facts.md; chosen because the GET shape uses "").
    if (id !== "" && state.getCache(id) === undefined) return sendDtrError(res, 400, "INVALID_USER_SETTINGS", `no content cache with id ${id}`);
    state.setContentCache(username, id);
  }
  sendJson(res, 200, { ContentCacheUUID: state.contentCacheOf(username) ?? "" });
}
