// storage.path without a mount (issue 10, item 11's last boundary): the cache image runs as the
// unprivileged "node" user and makes only /var/lib/registry its own (deploy/cache-server.Dockerfile),
// so any other path in the container's own filesystem cannot be created and the cache exits at
// start. Such a spec is refused at validation, naming the field; a volume or bind lifts the rule.
import { describe, expect, it } from "vitest";
import { formatIssue } from "./issues.js";
import { loadCacheSpecFromText } from "./load.js";
import { imageWritable } from "./schema.js";

function spec(storage: string): string {
  return [
    "apiVersion: cache.dtr.io/v1alpha1",
    "kind: DTR",
    "metadata: {name: dtr}",
    "spec: {url: https://dtr.example.com, admin: {username: admin, password: {env: DTR_PASSWORD}}}",
    "---",
    "apiVersion: cache.dtr.io/v1alpha1",
    "kind: ContentCache",
    "metadata: {name: edge}",
    "spec:",
    "  node: {hostname: node-1}",
    "  externalURL: https://cache.example.com",
    `  storage: ${storage}`,
    "",
  ].join("\n");
}

describe("storage.path the cache's unprivileged user can write", () => {
  it.each(["{path: /data}", "{path: /srv/cache}", "{path: /var/lib}", "{path: /var/lib/registry-2}", '{path: "/var/lib/registry/../../../etc"}'])(
    "refuses %s without a volume or bind, naming spec.storage.path",
    (storage) => {
      const result = loadCacheSpecFromText(spec(storage), "caches.yaml");
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.issues.map((i) => [i.code, i.path])).toEqual([["INVALID_FIELD", "spec.storage.path"]]);
      const text = formatIssue(result.issues[0]!);
      expect(text).toContain("caches.yaml:12");
      expect(text).toContain("not writable by the cache's unprivileged user");
      expect(text).toContain("storage.volume or storage.bind");
    },
  );

  it.each([
    "{}",
    "{path: /var/lib/registry}",
    "{path: /var/lib/registry/}",
    "{path: /var/lib/registry/blobs}",
    "{path: /data, volume: edge-blobs}",
    "{path: /data, bind: /srv/edge}",
  ])("accepts %s", (storage) => {
    const result = loadCacheSpecFromText(spec(storage), "caches.yaml");
    expect(result.ok ? "ok" : result.issues.map(formatIssue).join("; ")).toBe("ok");
  });

  it("compares normalized paths, so a way out through .. is not inside", () => {
    expect(imageWritable("/var/lib/registry/a/../b")).toBe(true);
    expect(imageWritable("/var/lib/registry/..")).toBe(false);
    expect(imageWritable("/var/lib/registryx")).toBe(false);
  });
});
