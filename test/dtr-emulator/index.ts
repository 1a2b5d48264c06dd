// A DTR emulator for tests and the demo. DTR is proprietary, so the project carries a faithful
// stand-in for the parts it talks to, built from the team's DTR facts (DTR's published API
// description and content-cache guides): the /api/v0 content cache and user settings API, /ca,
// /_ping, and a registry front with token auth and the content-cache redirect flow. Every detail that DTR's published
// material leaves open is marked UNCONFIRMED where it is decided and listed in README.md.
import { randomBytes } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { handleApi } from "./api.js";
import { sendDtrError, sendJson, sendRegistryError, type RequestNotes } from "./http-util.js";
import { handleRegistry, handleToken, type RegistryContext } from "./registry.js";
import { EmulatorState, type ContentCache, type EmulatorUser, type Faults, type RequestLogEntry } from "./state.js";

export type { ContentCache, EmulatorUser, Faults, RequestLogEntry } from "./state.js";
export { signBlobGrant, verifyBlobGrant } from "./signing.js";

export interface DtrEmulatorOptions {
  readonly listenHost: string;
  /** 0 or absent: any free port. */
  readonly port?: number;
  /** The real registry (e.g. Debian's docker-registry) that holds the images. */
  readonly backendRegistryUrl: string;
  readonly users: readonly EmulatorUser[];
  /** Serve HTTPS. `ca` is what /ca returns (defaults to `cert`, i.e. a self-signed certificate). */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca?: string };
  /** Milliseconds since the epoch; injected so tests can expire tokens and signed URLs. */
  readonly clock?: () => number;
  /** Repositories anonymous clients may pull. Default: none (every repository is private). */
  readonly publicRepositories?: readonly string[];
  /** Repositories only the listed users may pull (default: every active user may pull every repository). */
  readonly repositoryReaders?: Readonly<Record<string, readonly string[]>>;
  /** The `service` of the token challenge. Default: the emulator's host:port. */
  readonly service?: string;
  /** Lifetime of a signed blob redirect. Default 300 s. */
  readonly redirectTtlSeconds?: number;
  /**
   * Redirect blob HEADs of cache users too, as distribution's registry does (default false: the
   * emulator's first behaviour, GET only; the cache must handle both).
   */
  readonly redirectHead?: boolean;
  /** `/v2` refuses basic auth and takes bearer tokens only, as real DTR does (default false). */
  readonly bearerOnly?: boolean;
  /** Lifetime of a registry token. Default 300 s. */
  readonly tokenTtlSeconds?: number;
  /** Called with every request log entry as it is recorded (the CLI prints them). */
  readonly onRequest?: (entry: RequestLogEntry) => void;
}

export interface DtrEmulator {
  /** e.g. http://127.0.0.1:40123 (https when tls is given). */
  readonly url: string;
  readonly hostPort: string;
  /** Registered content caches, as GET /api/v0/content_caches would list them. */
  contentCaches(): ContentCache[];
  /** Every known user's ContentCacheUUID ("" when unset). */
  settings(): Record<string, string>;
  /** Every request so far, in arrival order. */
  requestLog(): readonly RequestLogEntry[];
  clearRequestLog(): void;
  /** Flip fault switches; unspecified fields keep their value. */
  setFaults(faults: Partial<Faults>): void;
  /** Test setup shortcuts that bypass HTTP (not logged). */
  seed: {
    contentCache(name: string, host: string): ContentCache;
    userSetting(username: string, contentCacheUUID: string): void;
    /** Only these users may pull `repository` from now on (tokens already issued included). */
    repositoryReaders(repository: string, users: readonly string[]): void;
  };
  stop(): Promise<void>;
}

export async function startDtrEmulator(options: DtrEmulatorOptions): Promise<DtrEmulator> {
  const state = new EmulatorState(options.users);
  for (const [repository, users] of Object.entries(options.repositoryReaders ?? {})) state.restrictRepository(repository, users);
  const clock = options.clock ?? Date.now;
  const secret = randomBytes(32);
  let baseUrl = "";
  const ctx: RegistryContext = {
    state,
    secret,
    baseUrl: () => baseUrl,
    get service() {
      return options.service ?? new URL(baseUrl).host;
    },
    backendRegistryUrl: options.backendRegistryUrl,
    publicRepositories: new Set(options.publicRepositories ?? []),
    nowSeconds: () => Math.floor(clock() / 1000),
    tokenTtlSeconds: options.tokenTtlSeconds ?? 300,
    redirectTtlSeconds: options.redirectTtlSeconds ?? 300,
    redirectHead: options.redirectHead ?? false,
    bearerOnly: options.bearerOnly ?? false,
  };
  const caPem = options.tls?.ca ?? options.tls?.cert;
  const timers = new Set<NodeJS.Timeout>();
  let inFlight = 0;

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://emulator.invalid");
    const notes: RequestNotes = { redirected: false, signed: false };
    inFlight += 1;
    const concurrent = inFlight;
    let logged = false;
    const log = (): void => {
      if (logged) return;
      logged = true;
      inFlight -= 1;
      state.record({
        method: req.method ?? "GET",
        path: url.pathname,
        status: res.statusCode,
        user: notes.user,
        redirected: notes.redirected,
        location: notes.location,
        signed: notes.signed,
        body: notes.body,
        concurrent,
      });
      const entry = state.requestLog().at(-1);
      if (entry !== undefined) options.onRequest?.(entry);
    };
    res.on("finish", log);
    res.on("close", log);
    const run = (): void => {
      route(req, res, url, notes).catch(() => {
        if (!res.headersSent) sendDtrError(res, 500, "INTERNAL_ERROR", "emulator failure");
        else res.destroy();
      });
    };
    if (state.faults.delayMs > 0) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        run();
      }, state.faults.delayMs);
      timers.add(timer);
    } else run();
  };

  const route = async (req: IncomingMessage, res: ServerResponse, url: URL, notes: RequestNotes): Promise<void> => {
    const path = url.pathname;
    const isRegistry = path === "/v2" || path.startsWith("/v2/") || path === "/auth/token";
    if (state.faults.down) {
      if (path === "/_ping") return sendJson(res, 503, { Error: "emulator switched down", Healthy: false });
      return isRegistry
        ? sendRegistryError(res, 503, "UNAVAILABLE", "service unavailable")
        : sendDtrError(res, 503, "SERVICE_UNAVAILABLE", "service unavailable");
    }
    const only = state.faults.failOnly;
    const selected =
      only === undefined || ((only.method === undefined || only.method === req.method) && (only.pathPrefix === undefined || path.startsWith(only.pathPrefix)));
    if (state.faults.loseAnswers > 0 && selected) {
      state.faults.loseAnswers -= 1;
      // Handle the request for real, then cut the connection instead of answering: the case of a
      // write that happened although the client never heard back.
      res.end = function lose(this: ServerResponse): ServerResponse {
        this.socket?.destroy();
        return this;
      } as ServerResponse["end"];
    } else if (state.faults.failRequests > 0 && selected) {
      state.faults.failRequests -= 1;
      const status = state.faults.failStatus;
      return isRegistry ? sendRegistryError(res, status, "UNKNOWN", "injected failure") : sendDtrError(res, status, "INTERNAL_ERROR", "injected failure");
    }
    if (path === "/_ping") return sendJson(res, 200, { Error: "", Healthy: true });
    if (path === "/ca") {
      if (caPem === undefined) return sendDtrError(res, 404, "NOT_FOUND", "the emulator runs without TLS, so it has no CA");
      res.writeHead(200, { "Content-Type": "application/x-pem-file" }).end(caPem);
      return;
    }
    if (path.startsWith("/api/v0/")) return handleApi(state, req, res, path, notes);
    if (path === "/auth/token") return handleToken(ctx, req, res, url, notes);
    if (isRegistry) return handleRegistry(ctx, req, res, url, notes);
    sendDtrError(res, 404, "NOT_FOUND", `no route for ${path}`);
  };

  const server: Server = options.tls === undefined ? createHttpServer(handler) : createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.listenHost, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const hostPort = `${host}:${address.port}`;
  baseUrl = `${options.tls === undefined ? "http" : "https"}://${hostPort}`;

  return {
    url: baseUrl,
    hostPort,
    contentCaches: () => state.listCaches(),
    settings: () => Object.fromEntries([...state.users.keys()].map((name) => [name, state.contentCacheOf(name) ?? ""])),
    requestLog: () => state.requestLog(),
    clearRequestLog: () => state.clearRequestLog(),
    setFaults: (faults) => {
      Object.assign(state.faults, faults);
    },
    seed: {
      contentCache: (name, host) => state.createCache(name, host),
      userSetting: (username, id) => {
        if (!state.users.has(username)) throw new Error(`seed: unknown user ${username}`);
        state.setContentCache(username, id);
      },
      repositoryReaders: (repository, users) => state.restrictRepository(repository, users),
    },
    stop: async () => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
