import { describe, expect, it } from "vitest";
import { loadCacheSpecFromText, type LoadResult } from "@dtrcache/crds";
import { createController, type ControllerOptions } from "./controller.js";
import { memoryLogger } from "./logger.js";
import { FakeClock } from "./runner/fake-clock.js";
import { CACHE, CONFIG_REF, LEGACY_USERS, OWNER, PURPOSE, ROLLOUT_HASH, nodeLabelMarker } from "./reconcile/labels.js";
import { staticSpecSource } from "./source.js";
import { conditionOf } from "./status.js";
import type { DtrSync } from "./dtr/sync.js";
import { FakeSwarm } from "./swarm/fake.js";
import { faultySwarmApi } from "./swarm/faulty.js";
import { recordSwarmApi } from "./swarm/recording.js";
import { chainedText, load, runbookText } from "./testing/specs.js";

function setup(initial: LoadResult, extra: Partial<ControllerOptions> = {}, hostnames: string[] = ["node-1"]) {
  const fake = new FakeSwarm(hostnames);
  const recording = recordSwarmApi(fake);
  const source = staticSpecSource(initial);
  const logger = memoryLogger();
  // settleMs 0: these tests are not about the settle time (ready-settle.test.ts is).
  const controller = createController({ docker: recording, specSource: source, logger, id: "test", settleMs: 0, ...extra });
  return { fake, recording, source, controller, logger };
}

const names = (m: Map<string, { name: string }>): string[] => [...m.values()].map((b) => b.name).sort();

describe("controller on a fake Swarm", () => {
  it("applies the runbook example: node label, one config, three secrets at the runbook paths, and the service", async () => {
    const { fake, controller } = setup(load(runbookText()));
    const reports = await controller.reconcileOnce();
    expect(reports.map((r) => r.error)).toEqual([undefined]);

    const node = [...fake.nodes.values()][0];
    expect(node?.spec.Labels).toMatchObject({ "dtr.cache": "true", [nodeLabelMarker("dtr.cache")]: "test" });
    expect(names(fake.configs)).toEqual([expect.stringMatching(/^region-asia-config-[0-9a-f]{8}$/)]);
    expect(names(fake.secrets).map((n) => n.replace(/-[0-9a-f]{8}$/, ""))).toEqual(["region-asia-ca", "region-asia-cert", "region-asia-key"]);

    const service = [...fake.services.values()][0];
    const container = service?.spec.TaskTemplate.ContainerSpec;
    expect(container?.Command).toEqual(["/start.sh", "/config.yml"]);
    expect(container?.Configs?.map((c) => c.File.Name)).toEqual(["/config.yml"]);
    expect(container?.Secrets?.map((s) => s.File.Name).sort()).toEqual([
      "/run/secrets/cache.cert.pem",
      "/run/secrets/cache.key.pem",
      "/run/secrets/dtr.cert.pem",
    ]);
    expect(service?.spec.TaskTemplate.Placement?.Constraints).toContain("node.labels.dtr.cache == true");
    expect(service?.spec.EndpointSpec?.Ports).toEqual([{ Protocol: "tcp", TargetPort: 443, PublishedPort: 443, PublishMode: "host" }]);
    expect(service?.spec.UpdateConfig).toMatchObject({ Order: "stop-first", FailureAction: "rollback" });
    expect(service?.spec.TaskTemplate.RestartPolicy?.Condition).toBe("on-failure");
    // The users are the DTR reconciler's record, not a label of the Swarm step (issue 10, defect 2).
    expect(service?.spec.Labels[LEGACY_USERS]).toBeUndefined();
    const config = [...fake.configs.values()][0];
    expect(config?.data.toString()).toContain("blobttl: 24h");
    expect(config?.data.toString()).toContain("- /run/secrets/dtr.cert.pem");
  });

  it("reports every reconcile to onReconcile with its outcome and the error's stable code", async () => {
    const events: Parameters<NonNullable<ControllerOptions["onReconcile"]>>[0][] = [];
    const fake = new FakeSwarm(["node-1"]);
    const faulty = faultySwarmApi(fake);
    const controller = createController({
      docker: faulty,
      specSource: staticSpecSource(load(runbookText())),
      id: "test",
      onReconcile: (event) => events.push(event),
    });
    await controller.reconcileOnce();
    expect(events).toEqual([expect.objectContaining({ cache: "region-asia", mode: "apply", outcome: "success" })]);
    expect(events[0]?.errorCode).toBeUndefined();
    events.length = 0;
    faulty.inject({ call: "listNodes", code: "UNAVAILABLE", message: "connect ECONNREFUSED", times: Infinity });
    await controller.reconcileOnce();
    expect(events).toEqual([expect.objectContaining({ cache: "region-asia", outcome: "error", errorCode: "UNAVAILABLE" })]);
  });

  it("issues zero mutating calls on a second reconcile with nothing to do", async () => {
    const { recording, controller } = setup(load(runbookText()));
    await controller.reconcileOnce();
    await controller.reconcileOnce(); // prunes nothing, rollout converged
    recording.reset();
    await controller.reconcileOnce();
    expect(recording.mutatingCalls()).toEqual([]);
    expect(recording.counts().total).toBeGreaterThan(0);
  });

  it("reports Ready with tasks running/desired and the mounted revisions once converged", async () => {
    const { controller } = setup(load(runbookText()));
    await controller.reconcileOnce();
    await controller.reconcileOnce();
    const status = controller.status().caches[0];
    expect(conditionOf(status, "Ready")?.status).toBe("True");
    expect(conditionOf(status, "Degraded")?.status).toBe("False");
    expect(status?.tasks).toEqual({ running: 1, desired: 1, nodes: ["node-1"] });
    expect(status?.revisions).toHaveLength(4);
    expect(status?.observedGeneration).toMatch(/^[0-9a-f]{16}$/);
  });

  it("rolls a blobTTL edit out as a new config revision, keeps the http secret, and prunes beyond two revisions", async () => {
    const { fake, source, controller } = setup(load(runbookText()));
    await controller.reconcileOnce();
    const secretOf = (): string | undefined => /secret: (\S+)/.exec([...fake.configs.values()].at(-1)?.data.toString() ?? "")?.[1];
    const firstSecret = secretOf();
    for (const ttl of ["12h", "6h", "3h"]) {
      source.set(load(runbookText({ blobTTL: ttl })));
      await controller.reconcileOnce(); // create + swap
      await controller.reconcileOnce(); // converged: prune
      const current = [...fake.services.values()][0]?.spec.TaskTemplate.ContainerSpec.Configs?.[0]?.ConfigName;
      const config = [...fake.configs.values()].find((c) => c.name === current);
      expect(config?.data.toString()).toContain(`blobttl: ${ttl}`);
      expect(secretOf()).toBe(firstSecret);
    }
    expect(fake.configs.size).toBe(2);
  });

  it("repairs drift: a removed node label, a deleted service and a removed secret come back", async () => {
    const { fake, controller } = setup(load(runbookText()));
    await controller.reconcileOnce();
    fake.setNodeLabels("node-1", {});
    const service = [...fake.services.values()][0];
    await fake.removeService(service?.id ?? "");
    const key = [...fake.secrets.values()].find((s) => s.labels[PURPOSE] === "key");
    await fake.removeSecret(key?.id ?? "");

    await controller.reconcileOnce();
    expect([...fake.nodes.values()][0]?.spec.Labels?.["dtr.cache"]).toBe("true");
    expect(fake.services.size).toBe(1);
    expect(names(fake.secrets)).toContain(key?.name);
  });

  it("refuses a spec without caches while caches exist, and applies it with allowEmpty", async () => {
    const empty = load(runbookText().split("---")[0] ?? "");
    const guarded = setup(load(runbookText()));
    await guarded.controller.reconcileOnce();
    await guarded.controller.start();
    guarded.source.set(empty);
    await expect.poll(() => guarded.controller.status().spec.errors.join(" ")).toMatch(/refusing to remove them all/);
    // names the flag an operator can pass, not the internal option name
    expect(guarded.controller.status().spec.errors.join(" ")).toContain("--allow-empty");
    expect(guarded.controller.status().spec.errors.join(" ")).not.toContain("set allowEmpty");
    await guarded.controller.idle();
    expect(guarded.fake.services.size).toBe(1);
    await guarded.controller.stop();

    const allowed = setup(load(runbookText()), { allowEmpty: true });
    await allowed.controller.reconcileOnce();
    allowed.source.set(empty);
    await allowed.controller.reconcileOnce();
    expect(allowed.fake.services.size + allowed.fake.configs.size + allowed.fake.secrets.size).toBe(0);
  });

  it("leaves owned caches alone when it starts with a refused or broken spec (no spec ever loaded)", async () => {
    const first = setup(load(runbookText()));
    await first.controller.reconcileOnce();
    const before = { services: first.fake.services.size, configs: first.fake.configs.size, secrets: first.fake.secrets.size };
    expect(before.services).toBe(1);

    // A new controller process over the same swarm: first an emptied file, then a broken one.
    const broken = loadCacheSpecFromText("kind: [unclosed", "spec.yaml");
    expect(broken.ok).toBe(false);
    for (const initial of [load(runbookText().split("---")[0] ?? ""), broken]) {
      const recording = recordSwarmApi(first.fake);
      const restarted = createController({ docker: recording, specSource: staticSpecSource(initial), id: "test" });
      const reports = await restarted.reconcileOnce();
      expect(reports.map((r) => r.mode)).toEqual(["skipped"]);
      await restarted.start();
      await restarted.idle();
      await restarted.stop();
      expect(recording.mutatingCalls()).toEqual([]);
      expect({ services: first.fake.services.size, configs: first.fake.configs.size, secrets: first.fake.secrets.size }).toEqual(before);
      await expect(restarted.plan()).rejects.toThrow(/no valid spec loaded/);
    }
  });

  it("tears a removed cache down completely and leaves objects it does not own alone", async () => {
    const { fake, source, controller } = setup(load(runbookText()), { allowEmpty: true });
    await fake.createConfig({ name: "someone-elses", labels: { team: "x" }, data: Buffer.from("x") });
    fake.setNodeLabels("node-1", { rack: "a" });
    await controller.reconcileOnce();
    source.set(load(runbookText().split("---")[0] ?? ""));
    const reports = await controller.reconcileOnce();
    expect(reports).toMatchObject([{ cache: "region-asia", mode: "teardown" }]);
    expect(fake.services.size).toBe(0);
    expect(names(fake.configs)).toEqual(["someone-elses"]);
    expect(fake.secrets.size).toBe(0);
    expect([...fake.nodes.values()][0]?.spec.Labels).toEqual({ rack: "a" });
    expect(controller.status().caches).toEqual([]);
  });

  it("never removes a node label it did not set", async () => {
    const { fake, source, controller } = setup(load(runbookText()), { allowEmpty: true });
    fake.setNodeLabels("node-1", { "dtr.cache": "true" });
    await controller.reconcileOnce();
    source.set(load(runbookText().split("---")[0] ?? ""));
    await controller.reconcileOnce();
    expect([...fake.nodes.values()][0]?.spec.Labels).toEqual({ "dtr.cache": "true" });
  });

  it("calls DtrSync.apply after the Swarm objects exist and DtrSync.remove before removing the service", async () => {
    const calls: string[] = [];
    const fake0 = new FakeSwarm(["node-1"]);
    const dtrSync: DtrSync = {
      apply: (cache, request) => {
        calls.push(`apply ${cache.name} services=${fake0.services.size} reset=${request.reset.join(",")}`);
        return Promise.resolve({ registrationId: "id-1", users: [{ username: "admin", state: "assigned" }] });
      },
      remove: (removal) => {
        calls.push(`remove ${removal.cacheName} services=${fake0.services.size} users=${removal.users.join(",")}`);
        return Promise.resolve({ foreign: [] });
      },
    };
    const source = staticSpecSource(load(runbookText()));
    const controller = createController({ docker: fake0, specSource: source, dtrSync, id: "test", allowEmpty: true, settleMs: 0 });
    await controller.reconcileOnce(); // creates the service; DTR waits until it is Ready (make-before-break)
    await controller.reconcileOnce();
    expect(conditionOf(controller.status().caches[0], "DtrSynced")).toMatchObject({ status: "True" });
    expect(controller.status().caches[0]?.dtr).toEqual({
      registrationId: "id-1",
      resourceHash: expect.stringMatching(/^[0-9a-f]{16}$/),
      users: [{ username: "admin", state: "assigned" }],
    });
    source.set(load(runbookText().split("---")[0] ?? ""));
    await controller.reconcileOnce();
    expect(calls).toEqual(["apply region-asia services=1 reset=", "remove region-asia services=1 users=admin"]);
  });

  it("keeps converging the Swarm side when DtrSync fails, and reports DtrSynced False", async () => {
    const dtrSync: DtrSync = { apply: () => Promise.reject(new Error("DTR unreachable")), remove: () => Promise.resolve({ foreign: [] }) };
    const { fake, controller } = setup(load(runbookText()), { dtrSync });
    await controller.reconcileOnce();
    await controller.reconcileOnce(); // Ready: the DTR pass runs (and fails)
    expect(fake.services.size).toBe(1);
    expect(conditionOf(controller.status().caches[0], "DtrSynced")).toMatchObject({ status: "False", reason: "DTR_UNEXPECTED", message: "DTR unreachable" });
  });

  it("verifies the DTR side again after dtrResyncMs even when the spec did not change (DTR drift)", async () => {
    let now = Date.parse("2026-11-26T12:00:00Z");
    let applies = 0;
    const dtrSync: DtrSync = { apply: () => Promise.resolve({ registrationId: `id-${++applies}`, users: [] }), remove: () => Promise.resolve({ foreign: [] }) };
    const { controller } = setup(load(runbookText()), { dtrSync, dtrResyncMs: 60_000, clock: { now: () => new Date(now) } });
    await controller.reconcileOnce();
    await controller.reconcileOnce();
    expect(applies).toBe(1);
    now += 61_000;
    await controller.reconcileOnce();
    expect(applies).toBe(2);
    expect(controller.status().caches[0]?.dtr.registrationId).toBe("id-2");
  });

  it("retries a failed DTR pass on its own back-off and reports DtrSynced True once DTR answers", async () => {
    let down = true;
    const dtrSync: DtrSync = {
      apply: () => (down ? Promise.reject(new Error("DTR answered 503")) : Promise.resolve({ registrationId: "id-1", users: [] })),
      remove: () => Promise.resolve({ foreign: [] }),
    };
    const clock = new FakeClock();
    const { controller } = setup(load(runbookText()), { dtrSync, rolloutPollMs: 50, resyncIntervalMs: 3_600_000, clock });
    const dtrSynced = (): string | undefined => conditionOf(controller.status().caches[0], "DtrSynced")?.status;
    await controller.start();
    await controller.idle(); // creates the service
    clock.advance(50); // the rollout poll finds it Ready: the DTR pass runs and fails
    await controller.idle();
    expect(dtrSynced()).toBe("False");
    down = false;
    // No spec change, no resync in reach: the controller's own requeue (the DTR back-off is 1 s
    // after a first failure) brings it back within that second of its clock.
    for (let waited = 0; waited < 1_000 && dtrSynced() !== "True"; waited += 50) {
      clock.advance(50);
      await controller.idle();
    }
    expect(dtrSynced()).toBe("True");
    await controller.stop();
  });

  it("marks the cache Degraded on a spec the engine rejects and does not retry until the spec changes", async () => {
    const fake = new FakeSwarm(["node-1"]);
    const faulty = faultySwarmApi(fake);
    faulty.inject({ call: "createService", code: "INVALID", message: "invalid mount config", times: Infinity });
    const recording = recordSwarmApi(faulty);
    const source = staticSpecSource(load(runbookText()));
    const controller = createController({ docker: recording, specSource: source, id: "test" });
    await controller.start();
    await expect.poll(() => conditionOf(controller.status().caches[0], "Degraded")?.reason).toBe("InvalidSpec");
    await controller.idle();
    const attempts = recording.calls.filter((c) => c.call === "createService").length;
    expect(attempts).toBe(1);
    faulty.clear();
    source.set(load(runbookText({ blobTTL: "1h" })));
    await expect.poll(() => fake.services.size).toBe(1);
    await controller.stop();
  });

  describe("an update Swarm rolled back", () => {
    const image = (fake: FakeSwarm): string | undefined => [...fake.services.values()][0]?.spec.TaskTemplate.ContainerSpec.Image;
    const updates = (recording: ReturnType<typeof recordSwarmApi>): number => recording.calls.filter((c) => c.call === "updateService").length;

    /** Converges on the runbook, pushes an image edit with one controller, and lets Swarm roll it back. */
    async function rolledBack(how: "automatic" | "manual") {
      const { fake, source, controller } = setup(load(runbookText()));
      await controller.reconcileOnce();
      await controller.reconcileOnce();
      source.set(load(runbookText({ image: "docker/dtr-content-cache:2.6.6" })));
      await controller.reconcileOnce();
      expect(image(fake)).toContain(":2.6.6");
      fake.rollBack("region-asia", how);
      expect(image(fake)).toContain(":2.6.5");
      return { fake, source, controller };
    }

    it("is not pushed again by the controller that pushed it", async () => {
      const { fake, controller } = await rolledBack("automatic");
      const recording = recordSwarmApi(fake);
      const again = createController({
        docker: recording,
        specSource: staticSpecSource(load(runbookText({ image: "docker/dtr-content-cache:2.6.6" }))),
        id: "test",
      });
      // The same instance: its memory and the engine's record agree.
      await controller.reconcileOnce();
      expect(image(fake)).toContain(":2.6.5");
      expect(conditionOf(controller.status().caches[0], "Degraded")).toMatchObject({ status: "True", reason: "RolledBack" });
      await again.reconcileOnce();
      expect(updates(recording)).toBe(0);
    });

    for (const how of ["automatic", "manual"] as const) {
      it(`is not pushed again by a restarted controller (${how} rollback), which reports Degraded/RolledBack and pushes once the spec changes`, async () => {
        const { fake, source } = await rolledBack(how);
        const recording = recordSwarmApi(fake);
        const restarted = createController({ docker: recording, specSource: source, id: "test" });
        await restarted.reconcileOnce();
        await restarted.reconcileOnce();
        expect(recording.mutatingCalls()).toEqual([]);
        expect(image(fake)).toContain(":2.6.5");
        const cache = restarted.status().caches[0];
        expect(conditionOf(cache, "Degraded")).toMatchObject({ status: "True", reason: "RolledBack" });
        expect(conditionOf(cache, "Ready")?.status).toBe("False");
        const plans = await restarted.plan();
        expect(plans[0]?.actions.filter((a) => a.type === "update-service")).toEqual([]);
        expect(plans[0]?.held?.diffs.map((d) => d.path)).toContain("TaskTemplate.ContainerSpec.Image");

        source.set(load(runbookText({ image: "docker/dtr-content-cache:2.6.7" })));
        await restarted.reconcileOnce();
        expect(updates(recording)).toBe(1);
        expect(image(fake)).toContain(":2.6.7");
        await restarted.reconcileOnce(); // observes the new update, no longer the rollback
        expect(conditionOf(restarted.status().caches[0], "Degraded")?.status).toBe("False");
      });
    }

    it("pushes a spec edited back to one that ran before the rolled-back update", async () => {
      const { fake, source, controller } = setup(load(runbookText()));
      await controller.reconcileOnce();
      source.set(load(runbookText({ image: "docker/dtr-content-cache:2.6.6" })));
      await controller.reconcileOnce(); // 2.6.5 tasks are shut down and stay in the history
      source.set(load(runbookText({ image: "docker/dtr-content-cache:2.6.7" })));
      await controller.reconcileOnce();
      fake.rollBack("region-asia");
      expect(image(fake)).toContain(":2.6.6");
      source.set(load(runbookText()));
      const recording = recordSwarmApi(fake);
      await createController({ docker: recording, specSource: source, id: "test" }).reconcileOnce();
      expect(updates(recording)).toBe(1);
      expect(image(fake)).toContain(":2.6.5");
    });

    it("keys the hold on a ContainerSpec label that adds no write of its own and no task restart", async () => {
      const { fake, recording, source, controller } = setup(load(runbookText()));
      await controller.reconcileOnce();
      await controller.reconcileOnce();
      const service = [...fake.services.values()][0];
      if (!service) throw new Error("no service");
      const hash = service.spec.TaskTemplate.ContainerSpec.Labels?.[ROLLOUT_HASH];
      expect(hash).toMatch(/^[0-9a-f]{64}$/);
      expect(service.spec.Labels[ROLLOUT_HASH]).toBeUndefined();
      // A service written before the label existed is left as it is.
      const { [ROLLOUT_HASH]: _gone, ...withoutHash } = service.spec.TaskTemplate.ContainerSpec.Labels ?? {};
      service.spec = {
        ...service.spec,
        TaskTemplate: { ...service.spec.TaskTemplate, ContainerSpec: { ...service.spec.TaskTemplate.ContainerSpec, Labels: withoutHash } },
      };
      recording.reset();
      await controller.reconcileOnce();
      expect(recording.mutatingCalls()).toEqual([]);
      // A service-label repair replaces no task: one update, the TaskTemplate (no hash yet) and the
      // tasks stay. (A users edit no longer touches the service at all: users are the DTR
      // reconciler's record, issue 10.)
      const tasksBefore = (await fake.listTasks(service.id)).map((t) => t.id);
      const { [CONFIG_REF]: _ref, ...labelsWithoutRef } = service.spec.Labels;
      service.spec = { ...service.spec, Labels: labelsWithoutRef };
      await controller.reconcileOnce();
      expect(recording.mutatingCalls().map((c) => c.call)).toEqual(["updateService"]);
      expect(service.spec.TaskTemplate.ContainerSpec.Labels?.[ROLLOUT_HASH]).toBeUndefined();
      expect((await fake.listTasks(service.id)).map((t) => t.id)).toEqual(tasksBefore);
      // The next change that replaces tasks anyway writes it.
      source.set(load(runbookText({ blobTTL: "1h" })));
      await controller.reconcileOnce();
      expect(service.spec.TaskTemplate.ContainerSpec.Labels?.[ROLLOUT_HASH]).toMatch(/^[0-9a-f]{64}$/);
      expect(service.spec.TaskTemplate.ContainerSpec.Labels?.[ROLLOUT_HASH]).not.toBe(hash);
    });
  });

  it("re-reads and retries at once when a service update is out of sequence", async () => {
    const fake = new FakeSwarm(["node-1"]);
    const faulty = faultySwarmApi(fake);
    const source = staticSpecSource(load(runbookText()));
    const controller = createController({ docker: faulty, specSource: source, id: "test" });
    await controller.reconcileOnce();
    faulty.inject({ call: "updateService", code: "CONFLICT", message: "update out of sequence", times: 2 });
    await controller.start();
    source.set(load(runbookText({ blobTTL: "2h" })));
    await expect
      .poll(() =>
        [...fake.configs.values()].some(
          (c) =>
            c.data.toString().includes("blobttl: 2h") && [...fake.services.values()][0]?.spec.TaskTemplate.ContainerSpec.Configs?.[0]?.ConfigName === c.name,
        ),
      )
      .toBe(true);
    await controller.stop();
  });

  it("refuses to run against an engine that is not a Swarm manager", async () => {
    const { fake, controller } = setup(load(runbookText()));
    fake.manager = false;
    await expect(controller.start()).rejects.toMatchObject({ code: "NOT_MANAGER", message: expect.stringMatching(/not a Swarm manager/) });
  });

  it("surfaces Swarm's 'no suitable node' as Degraded when no node carries an existing label", async () => {
    const text = runbookText().replace("node:\n    hostname: node-1", "node:\n    existingLabel: zone=asia");
    const { controller } = setup(load(text));
    await controller.reconcileOnce();
    await controller.reconcileOnce();
    const status = controller.status().caches[0];
    expect(conditionOf(status, "Degraded")).toMatchObject({ status: "True", reason: "NoSuitableNode", message: expect.stringMatching(/no suitable node/) });
    expect(conditionOf(status, "Ready")?.status).toBe("False");
  });

  it("generates a TLS pair once, reuses it while its secrets exist, and gives the chained cache its certificate", async () => {
    const { fake, controller } = setup(load(chainedText()), {}, ["node-1", "node-2"]);
    await controller.reconcileOnce();
    const certs = (): string[] => [...fake.secrets.values()].filter((s) => s.labels[PURPOSE] === "cert" && s.labels[CACHE] === "region-eu").map((s) => s.name);
    const first = certs();
    expect(first).toHaveLength(1);
    await controller.reconcileOnce();
    expect(certs()).toEqual(first);
    const upstreamCert = fake.secretData(first[0] ?? "");
    const officeCa = [...fake.secrets.values()].find((s) => s.labels[CACHE] === "region-eu-office" && s.labels[PURPOSE] === "ca");
    expect(fake.secretData(officeCa?.name ?? "")).toContain(upstreamCert?.trim());
  });

  it("plans without writing and lists field diffs for a pending edit", async () => {
    const { recording, source, controller } = setup(load(runbookText()));
    await controller.reconcileOnce();
    source.set(load(runbookText({ port: 5443 })));
    recording.reset();
    const plans = await controller.plan();
    expect(recording.mutatingCalls()).toEqual([]);
    const update = plans[0]?.actions.find((a) => a.type === "update-service");
    expect(update?.type === "update-service" ? update.diffs.map((d) => d.path) : []).toEqual(
      expect.arrayContaining(["EndpointSpec.Ports", "TaskTemplate.ContainerSpec.Configs", "TaskTemplate.ContainerSpec.Env"]),
    );
  });

  it("never writes the http secret or key material into logs or status", async () => {
    const { fake, controller, logger } = setup(load(runbookText()));
    await controller.reconcileOnce();
    const httpSecret = /secret: (\S+)/.exec([...fake.configs.values()][0]?.data.toString() ?? "")?.[1] ?? "missing";
    const text = JSON.stringify(controller.status()) + JSON.stringify(logger.entries);
    expect(httpSecret).not.toBe("missing");
    expect(text).not.toContain(httpSecret);
    expect(text).not.toContain("PRIVATE KEY");
  });

  it("owns only objects with its owner label", async () => {
    const { fake, controller } = setup(load(runbookText()));
    await controller.reconcileOnce();
    for (const o of [...fake.configs.values(), ...fake.secrets.values()]) expect(o.labels[OWNER]).toBe("test");
    expect([...fake.services.values()][0]?.spec.Labels[OWNER]).toBe("test");
  });
});
