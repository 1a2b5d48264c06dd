// The controller stack's HEALTHCHECK on the production controller image (deploy/stack/
// controller.stack.yml): the exact command of the stack file, run by the engine in a container
// started as the stack starts it (`run --listen 0.0.0.0:9090 --status-token-file …` as root with
// the manager's socket) — the container turns healthy while the status endpoint requires a token
// (its /healthz does not), and unhealthy once the process no longer answers on that port.
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { parse } from "yaml";
import { dockerCli, repoRoot } from "../harness/index.js";
import { run, waitFor } from "../harness/proc.js";

const harness = inject("harness");
const owner = `hc-${randomBytes(3).toString("hex")}`;
const socketPath = harness.dockerHost.replace(/^unix:\/\//, "");
const started: string[] = [];

async function docker(...args: string[]): Promise<string> {
  const result = await run(await dockerCli(), ["-H", harness.dockerHost, ...args], {
    env: { PATH: process.env.PATH ?? "", DOCKER_HOST: harness.dockerHost, HOME: harness.workDir },
    timeoutMs: 60_000,
  });
  return result.stdout.trim();
}

interface Stack {
  services: { controller: { command: string[]; healthcheck: { test: string[] } } };
}

afterAll(async () => {
  for (const id of started) await docker("rm", "-f", id).catch(() => undefined);
  for (const name of [`dtrcache-lease-${owner}`, `dtrcache.events.${owner}`]) await docker("config", "rm", name).catch(() => undefined);
});

const health = (id: string): Promise<string> => docker("inspect", "--format", "{{.State.Health.Status}} {{.State.Status}}", id);

describe("controller stack healthcheck on the production image", () => {
  it("healthy while `dtrcache run` serves, behind a status token; unhealthy when nothing answers on the port", async () => {
    const stack = parse(await readFile(join(repoRoot(), "deploy", "stack", "controller.stack.yml"), "utf8")) as Stack;
    const [kind, ...test] = stack.services.controller.healthcheck.test;
    expect(kind).toBe("CMD");
    const dir = await mkdtemp(join(harness.workDir, "hc-"));
    await writeFile(join(dir, "token"), "hc-token\n", { mode: 0o644 });
    const args = stack.services.controller.command.map((a) => a.replace("${DTRCACHE_OWNER_ID:-dtrcache}", owner));
    const id = await docker(
      "run",
      "-d",
      "--user",
      "root",
      "-v",
      `${socketPath}:/var/run/docker.sock`,
      "-e",
      "DOCKER_HOST=unix:///var/run/docker.sock",
      "-v",
      `${join(dir, "token")}:/run/secrets/dtrcache-status-token:ro`,
      "--health-cmd",
      shellJoin(test),
      "--health-interval",
      "1s",
      "--health-retries",
      "2",
      "--health-timeout",
      "5s",
      harness.images.controller ?? "",
      ...args,
    );
    started.push(id);
    const healthy = await waitFor(
      "controller healthy",
      async () => {
        const state = await health(id);
        if (state.endsWith("exited")) throw new Error(`exited: ${await docker("logs", id).catch(() => "")}`);
        return state.startsWith("healthy") ? state : undefined;
      },
      60_000,
      500,
    );
    expect(healthy).toMatch(/^healthy running/);

    // the same command against a port nothing listens on: the engine reports unhealthy
    const moved = test.map((a) => a.replace(":9090/", ":9/"));
    const broken = await docker(
      "run",
      "-d",
      "--user",
      "root",
      "--entrypoint",
      "node",
      "--health-cmd",
      shellJoin(moved),
      "--health-interval",
      "1s",
      "--health-retries",
      "2",
      harness.images.controller ?? "",
      "-e",
      "setInterval(() => {}, 1000)",
    );
    started.push(broken);
    const unhealthy = await waitFor("unhealthy", async () => ((await health(broken)).startsWith("unhealthy") ? "unhealthy" : undefined), 60_000, 500);
    expect(unhealthy).toBe("unhealthy");
  }, 180_000);
});

/** --health-cmd takes one string run by the image's shell: quote each word for /bin/sh. */
function shellJoin(words: readonly string[]): string {
  return words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(" ");
}
