// A small L4 (TCP) relay for the HA test, in the test process on the harness's host address. Two
// uses: a load balancer in front of a cache's replicas (health checks on each replica's debug
// listener /healthz, a new connection goes to a healthy backend, a refused connect is retried on the
// next backend, as HAProxy's `retries` + `redispatch` or an L4 cloud balancer do), and a slow link
// (a byte rate for what the backend sends), so that a cache's fill from its upstream takes seconds
// and a node can be killed in the middle of it. It never interprets HTTP: a connection cut on one
// side is cut on the other, as a real L4 balancer does. Backends are test hosts only.
import { createConnection, createServer, type Server, type Socket } from "node:net";

export interface RelayBackend {
  readonly host: string;
  readonly port: number;
  /** Health check URL (HTTP GET, any 2xx is healthy); without one a backend counts as healthy. */
  readonly healthUrl?: string;
}

/** `prefer`: backend `index` while it is healthy, else the next healthy one; `round-robin`: each healthy backend in turn. */
export type RelayPolicy = { readonly kind: "prefer"; readonly index: number } | { readonly kind: "round-robin" };

export interface BackendStats {
  readonly healthy: boolean;
  /** Connections relayed to this backend (connected). */
  readonly connections: number;
  /** Connect attempts refused or failed, each retried on another backend. */
  readonly failedConnects: number;
  /** Bytes relayed from this backend to clients. */
  readonly bytesFromBackend: number;
}

export interface TcpRelay {
  /** HOST:PORT clients connect to. */
  readonly hostPort: string;
  readonly url: string;
  setPolicy(policy: RelayPolicy): void;
  /** Bytes per second for backend -> client, per connection; undefined: unlimited. */
  setRate(bytesPerSecond: number | undefined): void;
  stats(): BackendStats[];
  stop(): Promise<void>;
}

export interface StartTcpRelayOptions {
  readonly listenHost: string;
  /** Default: a free port. */
  readonly port?: number;
  readonly backends: readonly RelayBackend[];
  readonly policy?: RelayPolicy;
  readonly rateBytesPerSecond?: number;
  /** Default 250 ms. */
  readonly healthIntervalMs?: number;
  /** Consecutive failed checks that make a backend unhealthy; default 2. One success makes it healthy. */
  readonly unhealthyAfter?: number;
}

interface BackendState {
  healthy: boolean;
  failures: number;
  connections: number;
  failedConnects: number;
  bytesFromBackend: number;
}

/** One rate-limited pipe backend -> client: pauses the backend while it is ahead of its budget. */
function pipeLimited(from: Socket, to: Socket, rate: () => number | undefined, count: (n: number) => void): void {
  const started = Date.now();
  let sent = 0;
  from.on("data", (chunk: Buffer) => {
    count(chunk.length);
    sent += chunk.length;
    const ok = to.write(chunk);
    const limit = rate();
    const aheadMs = limit === undefined ? 0 : (sent / limit) * 1000 - (Date.now() - started);
    if (aheadMs > 0 || !ok) {
      from.pause();
      let waits = (aheadMs > 0 ? 1 : 0) + (ok ? 0 : 1);
      const resume = (): void => {
        waits -= 1;
        if (waits === 0 && !from.destroyed) from.resume();
      };
      if (aheadMs > 0) setTimeout(resume, aheadMs).unref();
      if (!ok) to.once("drain", resume);
    }
  });
}

export async function startTcpRelay(options: StartTcpRelayOptions): Promise<TcpRelay> {
  const states: BackendState[] = options.backends.map((b) => ({
    healthy: b.healthUrl === undefined,
    failures: 0,
    connections: 0,
    failedConnects: 0,
    bytesFromBackend: 0,
  }));
  let policy: RelayPolicy = options.policy ?? { kind: "round-robin" };
  let rate = options.rateBytesPerSecond;
  let next = 0;
  let stopped = false;
  const sockets = new Set<Socket>();
  const unhealthyAfter = options.unhealthyAfter ?? 2;

  /** Backends to try for a new connection, in order: healthy ones by policy, then the rest (a balancer with every check failing still tries). */
  const order = (): number[] => {
    const n = options.backends.length;
    const start = policy.kind === "prefer" ? policy.index : next++ % n;
    const all = Array.from({ length: n }, (_, k) => (start + k) % n);
    return [...all.filter((i) => states[i]?.healthy), ...all.filter((i) => !states[i]?.healthy)];
  };

  const connectTo = (i: number): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const b = options.backends[i];
      if (!b) return reject(new Error(`no backend ${i}`));
      const socket = createConnection({ host: b.host, port: b.port });
      const timer = setTimeout(() => socket.destroy(new Error("connect timeout")), 2_000);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve(socket);
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });

  const handle = async (client: Socket): Promise<void> => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => undefined);
    client.pause();
    for (const i of order()) {
      let backend: Socket;
      try {
        backend = await connectTo(i);
      } catch {
        const s = states[i];
        if (s) {
          s.failedConnects += 1;
          // a refused connect is as good as a failed check: stop sending new connections there
          s.healthy = options.backends[i]?.healthUrl === undefined ? s.healthy : false;
        }
        continue;
      }
      if (client.destroyed) {
        backend.destroy();
        return;
      }
      const s = states[i];
      if (s) s.connections += 1;
      sockets.add(backend);
      backend.on("close", () => {
        sockets.delete(backend);
        client.destroy();
      });
      client.on("close", () => backend.destroy());
      backend.on("error", () => client.destroy());
      client.pipe(backend);
      pipeLimited(
        backend,
        client,
        () => rate,
        (n) => {
          if (s) s.bytesFromBackend += n;
        },
      );
      client.resume();
      return;
    }
    client.destroy();
  };

  const check = async (i: number): Promise<void> => {
    const b = options.backends[i];
    const s = states[i];
    if (!b?.healthUrl || !s) return;
    let ok: boolean;
    try {
      const res = await fetch(b.healthUrl, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      ok = res.ok;
    } catch {
      ok = false;
    }
    if (ok) {
      s.failures = 0;
      s.healthy = true;
    } else {
      s.failures += 1;
      if (s.failures >= unhealthyAfter) s.healthy = false;
    }
  };
  const timer = setInterval(() => {
    if (!stopped) options.backends.forEach((_, i) => void check(i));
  }, options.healthIntervalMs ?? 250);
  timer.unref();

  const server: Server = createServer((client) => void handle(client));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.listenHost, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("relay: no TCP address");
  const hostPort = `${options.listenHost}:${address.port}`;
  return {
    hostPort,
    url: `http://${hostPort}`,
    setPolicy: (p) => {
      policy = p;
    },
    setRate: (r) => {
      rate = r;
    },
    stats: () =>
      states.map((s) => ({ healthy: s.healthy, connections: s.connections, failedConnects: s.failedConnects, bytesFromBackend: s.bytesFromBackend })),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
