// The writer: a ConfigDocument -> config.yml text laid out exactly like the runbook's (same keys,
// same order, same indentation), so an operator can diff the two. The text is read back with the
// cache's own reader before it is returned: the writer can never hand out a config the cache
// would refuse at start; it throws ConfigRenderError naming the fields instead.
import { parse } from "yaml";
import { formatProblem, type CacheConfig, type ConfigProblem, type LogLevel } from "./model.js";
import { parseConfig } from "./parse.js";
import type { ListenAddress } from "./rules.js";

/** What the writer writes: the runbook's fields, durations and sizes as the operator wrote them. */
export interface ConfigDocument {
  readonly logLevel: LogLevel;
  /** storage.filesystem.rootdirectory */
  readonly rootDirectory: string;
  /** http.addr */
  readonly listen: ListenAddress;
  /** http.secret: shared by every replica of one cache. */
  readonly secret: string;
  /** http.host: the URL clients and DTR use to reach the cache. */
  readonly host: string;
  /** http.tls; absent for plain HTTP. */
  readonly tls?: { readonly certificate: string; readonly key: string };
  /** http.debug.addr; absent, the cache keeps its debug listener on 127.0.0.1:5001. */
  readonly debug?: ListenAddress;
  /** blobttl in the registry's duration syntax (24h), written as given. */
  readonly blobTtl: string;
  readonly upstreams: readonly string[];
  /** PEM files the cache adds to its roots for upstream TLS. */
  readonly cas: readonly string[];
  /** maxsize (this project's LRU cap, not part of DTR's format), written as given. */
  readonly maxSize?: string;
}

/** The writer was asked for a config the cache would refuse; `problems` name its fields. */
export class ConfigRenderError extends Error {
  readonly code = "CONFIG_RENDER_REFUSED";
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(`the cache would refuse this config.yml: ${problems.map(formatProblem).join("; ")}`);
    this.name = "ConfigRenderError";
    this.problems = problems;
  }
}

/** The text and what the cache will read from it. */
export interface Rendered {
  readonly text: string;
  readonly config: CacheConfig;
}

export function renderConfig(doc: ConfigDocument): Rendered {
  const text = layout(doc);
  const read = parseConfig(text);
  // The reader never echoes http.secret, but a YAML syntax error may quote a line of the text:
  // the secret is taken out of those messages, so a refused render cannot leak it into a log.
  if (!read.ok) throw new ConfigRenderError(read.errors.map((p) => (p.path === "(yaml)" ? { ...p, message: redact(p.message, doc.secret) } : p)));
  return { text, config: read.config };
}

function layout(doc: ConfigDocument): string {
  const lines = [
    "version: 0.1",
    "log:",
    `  level: ${scalar(doc.logLevel)}`,
    "storage:",
    "  delete:",
    "    enabled: true",
    "  filesystem:",
    `    rootdirectory: ${scalar(doc.rootDirectory)}`,
    "http:",
    `  addr: ${scalar(address(doc.listen))}`,
    `  secret: ${scalar(doc.secret)}`,
    `  host: ${scalar(doc.host)}`,
  ];
  if (doc.tls) lines.push("  tls:", `    certificate: ${scalar(doc.tls.certificate)}`, `    key: ${scalar(doc.tls.key)}`);
  if (doc.debug) lines.push("  debug:", `    addr: ${scalar(address(doc.debug))}`);
  // The runbook indents the middleware list by six; kept so the file reads like the runbook.
  lines.push("middleware:", "  registry:", "      - name: downstream", "        options:", `          blobttl: ${scalar(doc.blobTtl)}`, "          upstreams:");
  for (const url of doc.upstreams) lines.push(`            - ${scalar(url)}`);
  if (doc.cas.length > 0) lines.push("          cas:", ...doc.cas.map((ca) => `            - ${scalar(ca)}`));
  if (doc.maxSize !== undefined) lines.push(`          maxsize: ${scalar(doc.maxSize)}`);
  return `${lines.join("\n")}\n`;
}

function redact(message: string, secret: string): string {
  return secret === "" ? message : message.split(secret).join("***");
}

function address(a: ListenAddress): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Plain when YAML reads it back as the same string, else double-quoted. */
function scalar(value: string): string {
  let plain: boolean;
  try {
    plain = !/[\n#]/.test(value) && parse(value, { logLevel: "error" }) === value;
  } catch {
    plain = false;
  }
  return plain ? value : JSON.stringify(value);
}
