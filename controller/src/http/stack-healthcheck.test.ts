// The controller stack's HEALTHCHECK (deploy/stack/controller.stack.yml): it must probe the port
// the service's own --listen names, on /healthz, and its exit code must follow the endpoint —
// 0 from a real status endpoint (also one that requires a bearer token: /healthz is exempt),
// 1 on an error answer or when nothing listens. The command runs as written, with only `node`
// (the image's runtime) mapped to this Node and the port moved to a free one.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createStatusHandler } from "./status-server.js";

const STACK = fileURLToPath(new URL("../../../deploy/stack/controller.stack.yml", import.meta.url));

interface Stack {
  services: { controller: { command: string[]; healthcheck?: { test: string[]; interval?: string; timeout?: string } } };
}

function controllerService(): Stack["services"]["controller"] {
  return (parse(readFileSync(STACK, "utf8")) as Stack).services.controller;
}

function listenPort(command: readonly string[]): number {
  const value = command[command.indexOf("--listen") + 1] ?? "";
  return Number(/:(\d+)$/.exec(value)?.[1]);
}

/** Runs the healthcheck's CMD with its port replaced; resolves to the exit code. */
function runHealthcheck(test: readonly string[], from: number, to: number): Promise<number> {
  const [kind, program, ...args] = test;
  expect(kind).toBe("CMD");
  expect(program).toBe("node");
  const moved = args.map((a) => a.split(`:${from}/`).join(`:${to}/`));
  return new Promise((resolve) => {
    execFile(process.execPath, moved, { timeout: 20_000 }, (error) => resolve(error ? (typeof error.code === "number" ? error.code : 99) : 0));
  });
}

let servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  servers = [];
});

async function listen(handler: Parameters<typeof createServer>[1]): Promise<number> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

describe("controller stack healthcheck", () => {
  it("probes /healthz on the port --listen names", () => {
    const service = controllerService();
    const port = listenPort(service.command);
    expect(port).toBeGreaterThan(0);
    const text = (service.healthcheck?.test ?? []).join(" ");
    expect(text).toContain(`http://127.0.0.1:${port}/healthz`);
  });

  it("exits 0 against a real status endpoint that requires a token, 1 on an error answer, 1 when nothing listens", async () => {
    const service = controllerService();
    const test = service.healthcheck?.test ?? [];
    const port = listenPort(service.command);
    const handler = createStatusHandler({
      provider: { snapshot: () => ({ caches: [] }), readiness: () => Promise.resolve({}) },
      metrics: new Registry(),
      bearerToken: "t0ken",
    });
    const healthy = await listen(handler);
    expect(await runHealthcheck(test, port, healthy)).toBe(0);
    const failing = await listen((_req, res) => {
      res.writeHead(500);
      res.end();
    });
    expect(await runHealthcheck(test, port, failing)).toBe(1);
    const closed = await listen(() => undefined);
    await new Promise((resolve) => servers.pop()?.close(resolve));
    expect(await runHealthcheck(test, port, closed)).toBe(1);
  });
});
