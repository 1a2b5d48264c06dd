// The service spec buildDesired makes for the HA topology (several replicas on labelled nodes,
// shared storage): one task per node, the shared directory mounted in every task, and one config
// (so one http.secret) for all of them.
import { describe, expect, it } from "vitest";
import { CONTAINER_PATHS, loadCacheSpecFromText, type ResolvedCache } from "@dtrcache/crds";
import { buildDesired, type CacheMaterials } from "./desired.js";
import { diffService } from "./normalize.js";

const DTR = `apiVersion: cache.dtr.io/v1alpha1
kind: DTR
metadata: {name: dtr}
spec:
  url: https://dtr.example.com
  admin: {username: admin, password: {env: DTR_ADMIN_PASSWORD}}
`;

function cacheText(fields: string): string {
  return `${DTR}---
apiVersion: cache.dtr.io/v1alpha1
kind: ContentCache
metadata: {name: ha}
spec:
  externalURL: http://cache.example.com:5000
  port: 5000
  tls: {disabled: true}
${fields}`;
}

function load(text: string): ResolvedCache {
  const result = loadCacheSpecFromText(text, "spec.yaml", "/");
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  const cache = result.spec.caches[0];
  if (!cache) throw new Error("no cache");
  return cache;
}

const materials: CacheMaterials = { configYaml: "version: 0.1\nhttp:\n  secret: same-for-all\n", tls: { kind: "none" } };
const desiredOf = (cache: ResolvedCache) => buildDesired("owner", cache, materials, CONTAINER_PATHS, {});

const HA = `  node: {existingLabel: dtr.ha=true}
  replicas: 2
  storage: {path: /var/lib/registry, bind: /srv/shared-cache}
`;

describe("buildDesired for several replicas", () => {
  it("allows at most one task per node, on the operator's label, with the shared directory in every task", () => {
    const service = desiredOf(load(cacheText(HA))).service;
    expect(service.Mode?.Replicated?.Replicas).toBe(2);
    expect(service.TaskTemplate.Placement).toEqual({ Constraints: ["node.labels.dtr.ha == true"], MaxReplicas: 1 });
    expect(service.TaskTemplate.ContainerSpec.Mounts).toEqual([{ Type: "bind", Source: "/srv/shared-cache", Target: "/var/lib/registry" }]);
  });

  it("gives every replica the one rendered config (one http.secret): a single config reference", () => {
    const desired = desiredOf(load(cacheText(HA)));
    const configs = desired.service.TaskTemplate.ContainerSpec.Configs ?? [];
    expect(configs).toHaveLength(1);
    expect(desired.blobs.find((b) => b.purpose === "config")?.data?.toString()).toContain("secret: same-for-all");
  });

  it("leaves a single replica's placement as it was (no MaxReplicas: running caches are not rolled)", () => {
    const service = desiredOf(load(cacheText("  node: {hostname: node2}\n"))).service;
    expect(service.TaskTemplate.Placement).toEqual({ Constraints: ["node.labels.dtr.cache == true", "node.hostname == node2"] });
  });

  it("sees a service whose one-per-node limit was removed by hand as drift, and none when it is there", () => {
    const service = desiredOf(load(cacheText(HA))).service;
    expect(diffService(service, service)).toEqual([]);
    const edited = { ...service, TaskTemplate: { ...service.TaskTemplate, Placement: { Constraints: service.TaskTemplate.Placement?.Constraints ?? [] } } };
    expect(diffService(service, edited)).toEqual([{ path: "TaskTemplate.Placement.MaxReplicas", from: "0", to: "1" }]);
  });
});
