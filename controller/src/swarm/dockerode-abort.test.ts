// Cancellation reaches the Engine API's HTTP request: a reconcile aborted while the engine has not
// answered closes the request (docker-modem 5 takes `abortSignal` per call), and after the abort
// no request is sent at all. Against a local HTTP server that accepts and never answers.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Dockerode from "dockerode";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AbortedError } from "../abort.js";
import { cancellableSwarm } from "../runner/cancellable-swarm.js";
import { withCallSignal } from "./call-signal.js";
import { DockerodeSwarmApi } from "./dockerode.js";

interface Seen {
  readonly method: string;
  readonly url: string;
  closed: boolean;
}

let server: Server;
let seen: Seen[];
let api: DockerodeSwarmApi;

beforeEach(async () => {
  seen = [];
  server = createServer((req: IncomingMessage) => {
    const entry: Seen = { method: req.method ?? "", url: req.url ?? "", closed: false };
    seen.push(entry);
    // Never answered: only the client closing the connection ends it.
    req.socket.on("close", () => (entry.closed = true));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  api = new DockerodeSwarmApi(new Dockerode({ host: "127.0.0.1", port, protocol: "http" }));
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe("DockerodeSwarmApi with a run's AbortSignal", () => {
  it("closes a read in flight when the run aborts, and rejects with AbortedError (not UNAVAILABLE)", async () => {
    const run = new AbortController();
    const pending = withCallSignal(run.signal, () => api.listTasks("region-asia"));
    await expect.poll(() => seen.length, { timeout: 5_000, interval: 5 }).toBe(1);
    expect(seen[0]?.url).toContain("/tasks?");
    run.abort(new Error("stopping"));
    await expect(pending).rejects.toBeInstanceOf(AbortedError);
    await expect.poll(() => seen[0]?.closed, { timeout: 5_000, interval: 5 }).toBe(true);
  });

  it("closes a write in flight through the reconcile's cancellable view, and sends nothing after the abort", async () => {
    const run = new AbortController();
    const swarm = cancellableSwarm(api, run.signal);
    const pending = swarm.updateNode("node1", { index: 3 }, { Labels: { a: "b" } });
    await expect.poll(() => seen.length, { timeout: 5_000, interval: 5 }).toBe(1);
    expect(seen[0]).toMatchObject({ method: "POST", url: expect.stringContaining("/nodes/node1/update?version=3") as unknown });
    run.abort(new Error("lease lost"));
    await expect(pending).rejects.toBeInstanceOf(AbortedError);
    await expect.poll(() => seen[0]?.closed, { timeout: 5_000, interval: 5 }).toBe(true);
    // Straight to the adapter too (the DTR record's writes do not go through the cancellable view).
    await expect(withCallSignal(run.signal, () => api.createConfig({ name: "c-config-00000000", labels: {}, data: Buffer.from("x") }))).rejects.toBeInstanceOf(
      AbortedError,
    );
    await expect(swarm.removeService("region-asia")).rejects.toBeInstanceOf(AbortedError);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen).toHaveLength(1);
  });

  it("does not tie the event stream, or a call outside any run, to a run's signal", async () => {
    const run = new AbortController();
    run.abort(new Error("stopping"));
    // subscribeEvents resolves once the engine answers the stream's headers; this one never does.
    const stream = withCallSignal(run.signal, () => api.subscribeEvents({ onEvent: () => undefined, onEnd: () => undefined })).catch(() => undefined);
    const plain = api.listNodes().catch((error: unknown) => error);
    await expect.poll(() => seen.map((s) => s.url.split("?")[0]).sort(), { timeout: 5_000, interval: 5 }).toEqual(["/events", "/nodes"]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen.map((s) => s.closed)).toEqual([false, false]);
    server.closeAllConnections();
    expect(await plain).toMatchObject({ code: "UNAVAILABLE" });
    await stream;
  });
});
