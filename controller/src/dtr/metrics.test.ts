// DTR metrics (issue 13, item 3): every request the client sends is counted by route template and
// status class, failures by stable code; user names and passwords never become labels; the last
// good sync time is set only by a pass that synced fully, and dropped when the cache is removed.
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ResolvedCache } from "@dtrcache/crds";
import { DtrClient } from "./client.js";
import { startEmulator, type EmulatorHandle } from "./emulator.test-helper.js";
import { registerDtrMetrics } from "./metrics.js";
import type { DtrSync } from "./sync.js";

const signal = (): AbortSignal => AbortSignal.timeout(20_000);
const noRetry = { retries: 0, minTimeoutMs: 1, maxTimeoutMs: 1 };

describe("DTR request metrics", () => {
  let dtr: EmulatorHandle;
  beforeAll(async () => {
    dtr = await startEmulator({
      users: [
        { username: "admin", password: "s3cret-pw", admin: true },
        { username: "alice-the-user", password: "alice-pw" },
      ],
    });
  });
  afterAll(async () => {
    await dtr.stop();
  });

  it("counts each request by method, route template and status class; errors by code; no user name or password in any label", async () => {
    const registry = new Registry();
    const metrics = registerDtrMetrics(registry);
    const admin = new DtrClient({ url: dtr.url, username: "admin", password: "s3cret-pw", retry: noRetry, observer: metrics.observeRequest });
    const created = await admin.createContentCache("m1", "https://m1:443", signal());
    await admin.listContentCaches(signal());
    await admin.setUserContentCache("alice-the-user", created.id, signal());
    expect(await admin.getUserContentCache("alice-the-user", signal())).toBe(created.id);
    await admin.getUserContentCache("ghost-user", signal()).catch(() => undefined);
    await admin.deleteContentCache(created.id, signal());
    const alice = new DtrClient({ url: dtr.url, username: "alice-the-user", password: "alice-pw", retry: noRetry, observer: metrics.observeRequest });
    await alice.createContentCache("m2", "https://m2:443", signal()).catch(() => undefined);
    // nothing listens on port 9 of localhost: no answer at all
    const down = new DtrClient({ url: "http://127.0.0.1:9", username: "admin", password: "s3cret-pw", retry: noRetry, observer: metrics.observeRequest });
    await down.listContentCaches(signal()).catch(() => undefined);

    const text = await registry.metrics();
    expect(text).toContain('dtrcache_controller_dtr_requests_total{method="POST",route="/api/v0/content_caches",status_class="2xx"} 1');
    expect(text).toContain('dtrcache_controller_dtr_requests_total{method="POST",route="/api/v0/content_caches",status_class="4xx"} 1');
    expect(text).toContain('dtrcache_controller_dtr_requests_total{method="GET",route="/api/v0/content_caches",status_class="2xx"} 1');
    expect(text).toContain('dtrcache_controller_dtr_requests_total{method="GET",route="/api/v0/content_caches",status_class="none"} 1');
    expect(text).toContain('dtrcache_controller_dtr_requests_total{method="PATCH",route="/api/v0/accounts/{user}/settings",status_class="2xx"} 1');
    expect(text).toContain('dtrcache_controller_dtr_requests_total{method="GET",route="/api/v0/accounts/{user}/settings",status_class="2xx"} 1');
    expect(text).toContain('dtrcache_controller_dtr_requests_total{method="GET",route="/api/v0/accounts/{user}/settings",status_class="4xx"} 1');
    expect(text).toContain('dtrcache_controller_dtr_requests_total{method="DELETE",route="/api/v0/content_caches/{id}",status_class="2xx"} 1');
    expect(text).toContain('dtrcache_controller_dtr_request_errors_total{method="POST",route="/api/v0/content_caches",code="DTR_FORBIDDEN"} 1');
    expect(text).toContain('dtrcache_controller_dtr_request_errors_total{method="GET",route="/api/v0/accounts/{user}/settings",code="DTR_NOT_FOUND"} 1');
    expect(text).toContain('dtrcache_controller_dtr_request_errors_total{method="GET",route="/api/v0/content_caches",code="DTR_UNAVAILABLE"} 1');
    expect(text).toContain('dtrcache_controller_dtr_request_duration_seconds_count{method="GET",route="/api/v0/content_caches"} 2');
    for (const leak of ["alice-the-user", "ghost-user", "s3cret-pw", created.id]) expect(text).not.toContain(leak);
  });

  it("counts every attempt of a retried call", async () => {
    const registry = new Registry();
    const metrics = registerDtrMetrics(registry);
    const client = new DtrClient({
      url: dtr.url,
      username: "admin",
      password: "s3cret-pw",
      retry: { retries: 2, minTimeoutMs: 1, maxTimeoutMs: 2 },
      observer: metrics.observeRequest,
    });
    dtr.setFaults({ failRequests: 2, failStatus: 503 });
    try {
      await client.listContentCaches(signal());
    } finally {
      dtr.setFaults({});
    }
    const text = await registry.metrics();
    expect(text).toContain('dtrcache_controller_dtr_requests_total{method="GET",route="/api/v0/content_caches",status_class="5xx"} 2');
    expect(text).toContain('dtrcache_controller_dtr_requests_total{method="GET",route="/api/v0/content_caches",status_class="2xx"} 1');
    expect(text).toContain('dtrcache_controller_dtr_request_errors_total{method="GET",route="/api/v0/content_caches",code="DTR_UNAVAILABLE"} 2');
  });
});

describe("last good DTR sync per cache", () => {
  const cache = { name: "region-asia" } as ResolvedCache;
  const request = { owned: [], assign: ["alice"], reset: [] };

  it("is set by a pass that synced every user, kept by a partial pass, and removed with the cache", async () => {
    const registry = new Registry();
    let t = 1_800_000_000_000;
    const metrics = registerDtrMetrics(registry, () => t);
    let state: "assigned" | "failed" = "assigned";
    const inner: DtrSync = {
      apply: () => Promise.resolve({ registrationId: "r1", host: "h", users: [{ username: "alice", state }] }),
      remove: () => Promise.resolve({ foreign: [] }),
    };
    const sync = metrics.instrument(inner);
    const ac = new AbortController();
    expect(await registry.metrics()).not.toContain('dtrcache_controller_dtr_last_sync_timestamp_seconds{cache="region-asia"}');
    await sync.apply(cache, request, ac.signal);
    expect(await registry.metrics()).toContain('dtrcache_controller_dtr_last_sync_timestamp_seconds{cache="region-asia"} 1800000000');
    t += 60_000;
    state = "failed";
    await sync.apply(cache, request, ac.signal);
    expect(await registry.metrics()).toContain('dtrcache_controller_dtr_last_sync_timestamp_seconds{cache="region-asia"} 1800000000');
    state = "assigned";
    await sync.apply(cache, request, ac.signal);
    expect(await registry.metrics()).toContain('dtrcache_controller_dtr_last_sync_timestamp_seconds{cache="region-asia"} 1800000060');
    await sync.remove({ cacheName: "region-asia", dtr: {} as never, users: [], owned: [] }, ac.signal);
    expect(await registry.metrics()).not.toContain('dtrcache_controller_dtr_last_sync_timestamp_seconds{cache="region-asia"}');
  });
});
