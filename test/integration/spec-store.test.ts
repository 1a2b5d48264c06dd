// The in-swarm spec store, the lease and the store CLI against the harness's real engine:
// concurrent applies (exactly one wins), malformed changes (exit 2, nothing written), two `run`
// with one owner id (one writes, the other says standby), the leader killed (the standby acts
// within 15 s), and a one-shot converge next to a running controller (refused, nothing written).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDockerClient, DockerodeSwarmApi, resolveDockerConnection, type SwarmApi } from "@dtrcache/controller";
import { repoRoot } from "../harness/index.js";
import { run } from "../harness/proc.js";
import { prepareSpecDir, removeOwned, runbookVariant } from "../bench/controller/support.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `st-${suffix}`;
const node = harness.nodes[0];
if (!node) throw new Error("the harness has no node");
const cli = join(repoRoot(), "controller", "dist", "cli", "main.js");
const env = { PATH: process.env.PATH ?? "", DOCKER_HOST: harness.dockerHost, DTR_ADMIN_PASSWORD: "not-used" };
const cacheName = `st-${suffix}`;
const port = 21_000 + Math.floor(Math.random() * 8_000);

let dir = "";
let api: SwarmApi;

/** The runbook for the harness's node; DTR on a closed loopback port (the Swarm side is what is tested). */
async function specText(blobTTL = "24h"): Promise<string> {
  const text = await runbookVariant({
    cache: cacheName,
    hostname: node?.hostname ?? "",
    nodeLabel: `dtr.cache.${suffix}=true`,
    port,
    image: harness.images.testHttp,
    blobTTL,
  });
  return text.replace("url: https://dtr.example.com:443", "url: https://127.0.0.1:9").replace("  trust:\n    caFile: certs/dtr.cert.pem\n", "");
}

async function writeSpec(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

const dtrcache = (...args: string[]) => run(process.execPath, [cli, ...args, "--id", owner], { env, allowFailure: true });
const storeConfigs = async () => (await api.listConfigs({ labels: ["io.dtrcache.store=v1", `io.dtrcache.store.owner=${owner}`] })).length;

beforeAll(async () => {
  dir = await mkdtemp(join(harness.workDir, "spec-store-"));
  await prepareSpecDir(dir);
  api = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(harness.dockerHost)));
});

afterAll(async () => {
  await removeOwned(api, owner);
  for (const c of await api.listConfigs({ labels: [] }))
    if (c.name.startsWith(`dtrcache-${owner}-`) || c.name === `dtrcache-lease-${owner}`) await api.removeConfig(c.id).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

describe("spec store on the real engine", () => {
  it("20 × two concurrent applies of one resource based on the same generation: one wins, the other exits 4; the store holds the winner", async () => {
    expect((await dtrcache("apply", "-f", await writeSpec("base.yaml", await specText()))).code).toBe(0);
    let wins = 0;
    for (let round = 0; round < 20; round += 1) {
      const generation = 1 + round;
      const variant = async (ttl: string) =>
        writeSpec(`r${round}-${ttl}.yaml`, (await specText(ttl)).replace(`name: ${cacheName}`, `name: ${cacheName}\n  generation: ${generation}`));
      const [a, b] = await Promise.all([variant(`${round + 1}h`), variant(`${round + 1}m`)]);
      const [ra, rb] = await Promise.all([dtrcache("apply", "-f", a), dtrcache("apply", "-f", b)]);
      const codes = [ra.code, rb.code].sort();
      expect(codes, `${ra.stderr}${rb.stderr}`).toEqual([0, 4]);
      const winner = ra.code === 0 ? `${round + 1}h` : `${round + 1}m`;
      const got = JSON.parse((await dtrcache("get", "cc", cacheName, "-o", "json")).stdout) as { spec: { blobTTL: string }; metadata: { generation: number } };
      expect(got.spec.blobTTL).toBe(winner);
      expect(got.metadata.generation).toBe(generation + 1);
      wins += 1;
    }
    expect(wins).toBe(20);
    // 10 revisions kept per resource (plus the DTR's one).
    expect(await storeConfigs()).toBe(11);
  });

  it("≥ 15 malformed applies (19, incl. missing Swarm secrets/configs) and edits exit 2 and write nothing", async () => {
    const good = await specText();
    const cases: [string, string][] = [
      ["bad duration", good.replace(/blobTTL: \S+/, "blobTTL: one hour")],
      ["unknown field", good.replace("blobTTL:", "blobTtl:")],
      ["bad port", good.replace(`port: ${port}`, "port: 70000")],
      ["bad url", good.replace(/externalURL: \S+/, "externalURL: ftp://x")],
      ["inline password", good.replace("env: DTR_ADMIN_PASSWORD", "value: hunter2")],
      ["missing swarm secret", good.replace("env: DTR_ADMIN_PASSWORD", "secret: no-such-secret")],
      ["unknown dtr", good.replace("dtr: dtr", "dtr: nope")],
      ["wrong apiVersion", good.replace(/apiVersion: \S+/, "apiVersion: v9")],
      ["wrong kind", good.replace("kind: ContentCache", "kind: Cache")],
      ["yaml syntax", `${good}\n  : : :\n`],
      ["missing cert file", good.replace("certs/cache.cert.pem", "certs/nope.pem")],
      ["key as cert", good.replace("certs/cache.cert.pem", "certs/cache.key.pem")],
      ["chain to itself", good.replace("upstreams: []", `upstreams: [{cache: ${cacheName}}]`)],
      ["bad name", good.replace(`name: ${cacheName}`, "name: Bad_Name")],
      ["replicas on hostname", good.replace("replicas: 1", "replicas: 3")],
      ["bad node label", good.replace(`nodeLabel: dtr.cache.${suffix}=true`, "nodeLabel: nolabel")],
      // TLS material by Swarm reference (item 3)
      ["missing cert secret", good.replace("certFile: certs/cache.cert.pem", `certFile: {secret: no-cert-${suffix}}`)],
      ["missing CA config", good.replace("url: https://127.0.0.1:9", `url: https://127.0.0.1:9\n  trust: {caFile: {config: no-ca-${suffix}}}`)],
      ["key as a config", good.replace("keyFile: certs/cache.key.pem", "keyFile: {config: cache.key.pem}")],
    ];
    const before = await storeConfigs();
    for (const [name, text] of cases) {
      const result = await dtrcache("apply", "-f", await writeSpec(`bad-${cases.findIndex((c) => c[0] === name)}.yaml`, text));
      expect(result.code, `${name}: ${result.stderr}`).toBe(2);
      expect(result.stderr, name).toMatch(/bad-\d+\.yaml:\d+:\d+ |bad-\d+\.yaml /);
    }
    // edit through a scripted editor that always saves an invalid value
    const editor = join(dir, "editor.sh");
    await writeFile(editor, "#!/bin/sh\nsed -i 's/blobTTL: .*/blobTTL: never/' \"$1\"\n", { mode: 0o755 });
    const edited = await run(process.execPath, [cli, "edit", cacheName, "--id", owner], { env: { ...env, DTRCACHE_EDITOR: editor }, allowFailure: true });
    expect(edited.code, edited.stderr).toBe(2);
    expect(await storeConfigs()).toBe(before);
    expect((await api.listServices({ labels: [`io.dtrcache.owner=${owner}`] })).length).toBe(0);
  });

  it("two `run` with one owner id: one leads, the other is standby; ≤ 3 service updates in 40 s; the standby takes over within 15 s of a kill; a one-shot is refused meanwhile", async () => {
    const a = await writeSpec("a.yaml", await specText("1h"));
    const b = await writeSpec("b.yaml", await specText("2h"));
    const start = (file: string) => {
      const child = spawn(process.execPath, [cli, "run", "-f", file, "--id", owner, "--listen", "127.0.0.1:0", "--log-level", "info"], {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let log = "";
      child.stdout.on("data", (d: Buffer) => (log += d.toString()));
      child.stderr.on("data", (d: Buffer) => (log += d.toString()));
      return { child, log: () => log };
    };
    const leader = start(a);
    await expect.poll(() => leader.log(), { timeout: 20_000 }).toContain("lease acquired");
    const standby = start(b);
    try {
      await expect.poll(() => standby.log(), { timeout: 20_000 }).toContain("standby");
      await expect.poll(async () => (await api.listServices({ labels: [`io.dtrcache.owner=${owner}`] })).length, { timeout: 60_000 }).toBe(1);
      const version = async () => (await api.listServices({ labels: [`io.dtrcache.owner=${owner}`] }))[0]?.version.index ?? 0;
      const v0 = await version();
      // A one-shot next to the live leader: refused, naming it, nothing written.
      const configsBefore = (await api.listConfigs({ labels: [`io.dtrcache.owner=${owner}`] })).length;
      const once = await dtrcache("reconcile", "--once", "-f", b, "--timeout", "5s");
      expect(once.code, once.stderr).toBe(5);
      expect(once.stderr).toMatch(/holds the lease/);
      // Checked at once: the leader's own later writes (its rollout) are not the one-shot's.
      expect((await api.listConfigs({ labels: [`io.dtrcache.owner=${owner}`] })).length).toBe(configsBefore);
      await new Promise((r) => setTimeout(r, 40_000));
      const updates = (await version()) - v0;
      expect(updates).toBeLessThanOrEqual(3);
      expect(standby.log()).not.toContain("lease acquired");
      // Kill the leader: the standby leads within 15 s.
      const killedAt = Date.now();
      leader.child.kill("SIGKILL");
      await expect.poll(() => standby.log(), { timeout: 15_000, interval: 200 }).toContain("lease acquired");
      const tookOver = Date.now() - killedAt;
      console.log(`standby took over ${tookOver} ms after the leader was killed; ${updates} service updates in 40 s with two controllers`);
      expect(tookOver).toBeLessThanOrEqual(15_000);
    } finally {
      leader.child.kill("SIGKILL");
      standby.child.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 1_000));
      standby.child.kill("SIGKILL");
    }
  });
});
