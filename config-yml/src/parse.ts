// The reader: config.yml text -> the typed model (model.ts) or `path: message` problems with
// line:col. Pure (no file access); the cache-server reads the file and calls this. Unknown keys
// are warnings, wrong values are errors. Values are checked with the contract's rules (rules.ts),
// the same ones the renderer and the CacheSpec's validation apply.
import { isMap, LineCounter, parseDocument } from "yaml";
import { readDownstream, readLimits } from "./downstream.js";
import { maskCredentials } from "./mask.js";
import { LOG_LEVELS, type CacheConfig, type ConfigResult, type LogLevel } from "./model.js";
import { Reader } from "./reader.js";
import { checkAddress, checkListeners, DEFAULT_DEBUG_LISTEN } from "./rules.js";

// Sections of the registry format that mean something to the reference registry but not to a
// read-only cache; accepted with a warning so a copied config still starts.
const IGNORED_TOP = new Set(["notifications", "reporting", "redis", "health", "validation", "compatibility", "proxy", "auth", "loglevel"]);

/** http.addr when absent: the registry's `:5000`. */
const DEFAULT_LISTEN = { host: "0.0.0.0", port: 5000 } as const;

/** Pure: YAML text -> config or problems. */
export function parseConfig(text: string): ConfigResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const r = new Reader(lines);
  for (const e of doc.errors) {
    const pos = e.linePos?.[0];
    // The parser may quote source text back (a token of a broken line): masked like every message.
    r.errors.push({ path: "(yaml)", message: maskCredentials(e.message.split("\n")[0] ?? e.message), ...(pos ? { line: pos.line, col: pos.col } : {}) });
  }
  if (r.errors.length > 0) return { ok: false, errors: r.errors, warnings: r.warnings };
  const root = doc.contents;
  if (!isMap(root)) {
    return { ok: false, errors: [{ path: "(root)", message: "the configuration must be a YAML mapping" }], warnings: [] };
  }
  r.checkKeys(root, "", ["version", "log", "storage", "http", "middleware"], IGNORED_TOP);

  const version = r.scalar(root, "version");
  if (version && String(version.value) !== "0.1") r.error("version", `unsupported version ${JSON.stringify(version.value)}; expected 0.1`, version.node);

  const log = r.map(root, "log", "log", ["level"], new Set(["formatter", "fields", "accesslog", "hooks", "reportcaller"]));
  const levelText = r.string(log, "level", "log.level") ?? "info";
  const logLevel = (LOG_LEVELS as readonly string[]).includes(levelText) ? (levelText as LogLevel) : undefined;
  if (!logLevel) r.error("log.level", `must be one of ${LOG_LEVELS.join(", ")}`, r.node(log, "level"));

  const storage = r.map(root, "storage", "storage", ["filesystem", "delete"], new Set(["cache", "maintenance", "redirect", "inmemory"]));
  const fsNode = r.map(storage, "filesystem", "storage.filesystem", ["rootdirectory"], new Set(["maxthreads"]));
  const rootDirectory = r.string(fsNode, "rootdirectory", "storage.filesystem.rootdirectory") ?? "/var/lib/registry";
  const del = r.map(storage, "delete", "storage.delete", ["enabled"]);
  const deleteEnabled = r.boolean(del, "enabled", "storage.delete.enabled") ?? false;

  const http = r.map(
    root,
    "http",
    "http",
    ["addr", "secret", "host", "tls", "debug"],
    new Set(["net", "prefix", "headers", "relativeurls", "http2", "draintimeout"]),
  );
  const addr = r.scalar(http, "addr") ? r.checked(http, "addr", "http.addr", (v) => checkAddress(String(v))) : DEFAULT_LISTEN;
  // distribution's debug server: /metrics and /healthz live there, never on the registry port.
  const debugNode = r.map(http, "debug", "http.debug", ["addr"], new Set(["prometheus", "pprof", "tls"]));
  const debugExplicit = r.scalar(debugNode, "addr") !== undefined;
  const debugAddr = debugExplicit ? r.checked(debugNode, "addr", "http.debug.addr", (v) => checkAddress(String(v))) : DEFAULT_DEBUG_LISTEN;
  if (addr && debugAddr) {
    const listeners = checkListeners(addr, debugExplicit ? debugAddr : undefined);
    // Named where the operator would change it: the debug address when written, else http.addr.
    if (!listeners.ok)
      r.error(debugExplicit ? "http.debug.addr" : "http.addr", listeners.message, debugExplicit ? r.node(debugNode, "addr") : r.node(http, "addr"));
  }
  const secret = r.string(http, "secret", "http.secret");
  const publicHost = r.string(http, "host", "http.host");
  const tlsNode = r.map(http, "tls", "http.tls", ["certificate", "key"], new Set(["clientcas", "minimumtls", "ciphersuites", "letsencrypt"]));
  const certificate = r.string(tlsNode, "certificate", "http.tls.certificate");
  const key = r.string(tlsNode, "key", "http.tls.key");
  if (tlsNode && (certificate === undefined) !== (key === undefined)) {
    r.error("http.tls", "certificate and key must be given together", tlsNode);
  }

  const { options: downstream, map: downstreamMap, base: downstreamBase } = readDownstream(r, root);
  const limits = readLimits(r, downstreamMap, downstreamBase);

  if (r.errors.length > 0 || !logLevel || !addr || !debugAddr || !downstream) return { ok: false, errors: r.errors, warnings: r.warnings };
  if (!deleteEnabled) r.warn("storage.delete.enabled", "is false: blobs past blobttl are kept (no expiry)");
  const config: CacheConfig = {
    logLevel,
    rootDirectory,
    deleteEnabled,
    listenHost: addr.host,
    listenPort: addr.port,
    debug: { ...debugAddr, explicit: debugExplicit },
    limits,
    secret,
    publicHost,
    tls: certificate && key ? { certificate, key } : undefined,
    downstream,
  };
  return { ok: true, warnings: r.warnings, config };
}
