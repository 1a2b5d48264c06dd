// The debug listener (distribution's `http.debug.addr`): /metrics and /healthz, off the registry
// port, so that what they show (upstream URLs and health, store size) is not served to every
// registry client. Plain HTTP, like distribution's; meant for a private address (loopback by
// default, a published port only when the operator asks for one).
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface DebugEndpoints {
  healthz(): unknown;
  metrics(): Promise<{ contentType: string; text: string }>;
}

export interface DebugServer {
  readonly url: string;
  close(): Promise<void>;
}

/** A debug listener refuses more than this many connections: it is for a scraper and a probe. */
const DEBUG_MAX_CONNECTIONS = 64;

export class DebugListenError extends Error {
  readonly code = "DEBUG_LISTEN_FAILED";
  constructor(address: string, options: { cause: unknown }) {
    super(`cannot listen on http.debug.addr ${address}: ${(options.cause as NodeJS.ErrnoException).code ?? String(options.cause)}`, options);
    this.name = "DebugListenError";
  }
}

export async function startDebugServer(host: string, port: number, endpoints: DebugEndpoints): Promise<DebugServer> {
  const server = createServer({ headersTimeout: 5_000, requestTimeout: 10_000, connectionsCheckingInterval: 1_000 }, (req, res) => serve(req, res, endpoints));
  server.maxConnections = DEBUG_MAX_CONNECTIONS;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => reject(new DebugListenError(`${host}:${port}`, { cause: err })));
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shown}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function serve(req: IncomingMessage, res: ServerResponse, endpoints: DebugEndpoints): void {
  const path = (req.url ?? "/").split("?")[0];
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { Allow: "GET, HEAD", "Content-Length": "0" });
    res.end();
    return;
  }
  if (path === "/healthz") {
    send(res, req, 200, "application/json", JSON.stringify(endpoints.healthz()));
    return;
  }
  if (path === "/metrics") {
    endpoints.metrics().then(
      (m) => send(res, req, 200, m.contentType, m.text),
      () => send(res, req, 500, "text/plain", "metrics unavailable\n"),
    );
    return;
  }
  send(res, req, 404, "text/plain", "not found; try /metrics or /healthz\n");
}

function send(res: ServerResponse, req: IncomingMessage, status: number, contentType: string, body: string): void {
  res.writeHead(status, { "Content-Type": contentType, "Content-Length": String(Buffer.byteLength(body)) });
  res.end(req.method === "HEAD" ? undefined : body);
}
