// TLS and CA material by reference to existing Swarm objects (issue 11, item 3), on the fake
// Swarm: crds accepts {secret}/{config} where a PEM path was, the cache's service mounts the
// named objects themselves (never copied, never pruned), admission refuses missing objects and
// secrets where the controller would have to read them, and the TLS monitor says what it could
// not check.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadCacheSpecFromText } from "@dtrcache/crds";
import { createController } from "../controller.js";
import { memoryLogger } from "../logger.js";
import { staticSpecSource } from "../source.js";
import { FakeSwarm } from "../swarm/fake.js";
import { recordSwarmApi } from "../swarm/recording.js";
import { admit } from "../store/admission.js";
import { swarmReferenceCheck } from "../store/references.js";
import { SpecStore } from "../store/store.js";
import { createTlsMonitor } from "../cli/tls-monitor.js";
import { PemSources } from "./pem-sources.js";
import { EXAMPLES_DIR, load, runbookText } from "../testing/specs.js";
import pino from "pino";

const pem = (name: string): Buffer => readFileSync(`${EXAMPLES_DIR}certs/${name}`);
// DTR on a closed loopback port: the TLS monitor probes upstreams, and tests reach nothing else.
const swarmRunbook = (hostname = "node-1"): string =>
  readFileSync(`${EXAMPLES_DIR}runbook-swarm.yaml`, "utf8")
    .replace("hostname: asia-node-1", `hostname: ${hostname}`)
    .replace("https://dtr.example.com:443", "https://127.0.0.1:9");

/** A swarm where the operator already ran the runbook's `docker secret/config create`. */
async function preparedSwarm(): Promise<{ fake: FakeSwarm; ids: Record<string, string> }> {
  const fake = new FakeSwarm(["node-1"]);
  const ids = {
    cert: await fake.createSecret({ name: "cache.cert.pem", labels: {}, data: pem("cache.cert.pem") }),
    key: await fake.createSecret({ name: "cache.key.pem", labels: {}, data: pem("cache.key.pem") }),
    ca: await fake.createConfig({ name: "dtr.cert.pem", labels: {}, data: pem("dtr.cert.pem") }),
    password: await fake.createSecret({ name: "dtr-admin-password", labels: {}, data: Buffer.from("not-a-real-one") }),
  };
  return { fake, ids };
}

describe("Swarm references in the spec", () => {
  it("crds loads {secret}/{config} for certFile, keyFile, caFile and extraCAFiles, and refuses a key as a config", () => {
    expect(loadCacheSpecFromText(swarmRunbook(), `${EXAMPLES_DIR}x.yaml`, EXAMPLES_DIR).ok).toBe(true);
    const extra = swarmRunbook().replace("upstreams: []", "upstreams: []\n  extraCAFiles:\n    - config: corp-ca.pem\n    - certs/dtr.cert.pem");
    expect(loadCacheSpecFromText(extra, `${EXAMPLES_DIR}x.yaml`, EXAMPLES_DIR).ok).toBe(true);
    const keyConfig = loadCacheSpecFromText(
      swarmRunbook().replace("keyFile:\n      secret: cache.key.pem", "keyFile:\n      config: cache.key.pem"),
      `${EXAMPLES_DIR}x.yaml`,
      EXAMPLES_DIR,
    );
    expect(keyConfig.ok).toBe(false);
    if (!keyConfig.ok) expect(keyConfig.issues.map((i) => `${i.path}: ${i.message}`).join("\n")).toMatch(/spec\.tls.*never a Swarm config|spec\.tls.*keyFile/);
  });

  it("mounts the referenced secrets at the runbook's paths by id, copies the CA config into the cache's bundle, creates no cert/key secret, and makes 0 writes on the next pass", async () => {
    const { fake, ids } = await preparedSwarm();
    const recording = recordSwarmApi(fake);
    const controller = createController({
      docker: recording,
      specSource: staticSpecSource(load(swarmRunbook())),
      logger: memoryLogger(),
      id: "test",
      settleMs: 0,
    });
    const reports = await controller.reconcileOnce();
    expect(reports.map((r) => r.error)).toEqual([undefined]);
    const service = [...fake.services.values()][0];
    const secrets = service?.spec.TaskTemplate.ContainerSpec.Secrets ?? [];
    expect(secrets.find((s) => s.File.Name === "/run/secrets/cache.cert.pem")).toMatchObject({ SecretName: "cache.cert.pem", SecretID: ids.cert });
    expect(secrets.find((s) => s.File.Name === "/run/secrets/cache.key.pem")).toMatchObject({ SecretName: "cache.key.pem", SecretID: ids.key });
    // The CA is readable (a config): it goes into the cache's own CA bundle secret, as a file would.
    const bundle = secrets.find((s) => s.File.Name === "/run/secrets/dtr.cert.pem");
    expect(bundle?.SecretName).toMatch(/^region-asia-ca-[0-9a-f]{8}$/);
    expect(fake.secretData(bundle?.SecretName ?? "")?.trim()).toBe(pem("dtr.cert.pem").toString("utf8").trim());
    const owned = [...fake.secrets.values()].filter((s) => s.labels["io.dtrcache.owner"] === "test").map((s) => s.name.replace(/-[0-9a-f]{8}$/, ""));
    expect(owned.sort()).toEqual(["region-asia-ca"]);

    recording.reset();
    await controller.reconcileOnce();
    expect(recording.mutatingCalls()).toEqual([]);
  });

  it("mounts a CA secret as the whole bundle when it is the only CA, and fails the reconcile (retried) while a referenced secret is missing", async () => {
    const { fake } = await preparedSwarm();
    const caSecret = await fake.createSecret({ name: "dtr-ca-secret", labels: {}, data: pem("dtr.cert.pem") });
    const text = swarmRunbook().replace("config: dtr.cert.pem", "secret: dtr-ca-secret");
    const controller = createController({ docker: fake, specSource: staticSpecSource(load(text)), logger: memoryLogger(), id: "test", settleMs: 0 });
    expect((await controller.reconcileOnce()).map((r) => r.error)).toEqual([undefined]);
    const secrets = [...fake.services.values()][0]?.spec.TaskTemplate.ContainerSpec.Secrets ?? [];
    expect(secrets.find((s) => s.File.Name === "/run/secrets/dtr.cert.pem")).toMatchObject({ SecretName: "dtr-ca-secret", SecretID: caSecret });

    const missing = createController({
      docker: new FakeSwarm(["node-1"]),
      specSource: staticSpecSource(load(swarmRunbook())),
      logger: memoryLogger(),
      id: "test",
      settleMs: 0,
    });
    const [report] = await missing.reconcileOnce();
    expect(report?.error).toMatch(/spec\.tls\.certFile: Swarm secret "cache\.cert\.pem" does not exist/);
  });

  it("admission refuses missing Swarm secrets/configs and a secret the controller would have to read", async () => {
    const { fake } = await preparedSwarm();
    const store = new SpecStore({ swarm: fake, owner: "t", who: "test" });
    const check = swarmReferenceCheck(fake);
    const issuesOf = async (t: string): Promise<string[]> => {
      try {
        await admit(store, { texts: [{ file: `${EXAMPLES_DIR}x.yaml`, text: t, baseDir: EXAMPLES_DIR }] }, check);
        return [];
      } catch (error) {
        return (error as { issues: { code: string; path: string; line?: number; message: string }[] }).issues.map(
          (i) => `${i.code} ${i.path}:${i.line ?? "?"} ${i.message}`,
        );
      }
    };
    expect(await issuesOf(swarmRunbook())).toEqual([]);
    expect(await issuesOf(swarmRunbook().replace("secret: cache.cert.pem", "secret: nope.pem"))).toEqual([
      expect.stringMatching(/^SWARM_REFERENCE_MISSING spec\.tls\.certFile\.secret:4\d Swarm secret "nope\.pem" does not exist/),
    ]);
    expect(await issuesOf(swarmRunbook().replace("config: dtr.cert.pem", "config: no-ca"))).toEqual([
      expect.stringMatching(/^SWARM_REFERENCE_MISSING spec\.trust\.caFile\.config:\d+ Swarm config "no-ca" does not exist/),
    ]);
    const combined = swarmRunbook()
      .replace("config: dtr.cert.pem", "secret: cache.cert.pem")
      .replace("upstreams: []", "upstreams: []\n  extraCAFiles:\n    - certs/dtr.cert.pem");
    expect(await issuesOf(combined)).toEqual([
      expect.stringMatching(
        /^SWARM_REFERENCE_UNUSABLE spec\.trust\.caFile\.secret:\d+ is a Swarm secret, which the controller cannot read, so it cannot be combined/,
      ),
    ]);
  });

  it("the TLS monitor checks a certificate in a config and says it did not check one in a secret", async () => {
    const { fake } = await preparedSwarm();
    await fake.createConfig({ name: "cache.cert.pem", labels: {}, data: pem("cache.cert.pem") });
    const monitor = createTlsMonitor({ dtrCa: () => Promise.resolve(undefined), logger: pino({ level: "silent" }), pemSources: new PemSources(fake) });
    const asSecret = load(swarmRunbook());
    if (!asSecret.ok) throw new Error("spec");
    await monitor.checkSpec(asSecret.spec);
    expect(
      monitor
        .findings()
        .get("region-asia")
        ?.findings.map((f) => `${f.reason} ${f.message}`),
    ).toEqual(expect.arrayContaining([expect.stringMatching(/^NotChecked tls\.certFile is Swarm secret cache\.cert\.pem, which the controller cannot read/)]));
    const asConfig = load(
      swarmRunbook()
        .replace("certFile:\n      secret: cache.cert.pem", "certFile:\n      config: cache.cert.pem")
        .replace("externalURL: https://dtr-cache.example.com", "externalURL: https://other.example.com"),
    );
    if (!asConfig.ok) throw new Error("spec");
    await monitor.checkSpec(asConfig.spec);
    const reasons =
      monitor
        .findings()
        .get("region-asia")
        ?.findings.map((f) => f.reason) ?? [];
    expect(reasons).not.toContain("NotChecked");
    expect(reasons).toContain("HostnameMismatch"); // the example certificate names dtr-cache.example.com: it was read and checked
  });

  it("a spec with file paths still works (process mode) — unchanged objects", () => {
    expect(load(runbookText()).ok).toBe(true);
  });
});
