// Metrics of the controller's DTR side (issue 13, item 3): every HTTP request the DTR client
// sends, by endpoint and outcome, and the time of each cache's last good DTR pass.
//
// Labels are route templates (`/api/v0/accounts/{user}/settings`), never the request's path: a
// raw path would carry user names (one series per user, and names in a scrape anyone with the
// status token can read). Nothing else about a request (host, credentials, body) is a label.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { summarizeDtrStatus } from "./dtr-sync.js";
import { statusClass, type DtrRequestObserver } from "./metrics-observer.js";
import type { DtrSync } from "./sync.js";

export interface DtrMetrics {
  /** Give this to the DTR client (DtrClientOptions.observer, DtrSyncOptions.observer). */
  readonly observeRequest: DtrRequestObserver;
  /** A DtrSync that sets the last-good-sync time of a cache after each pass that fully synced. */
  instrument(sync: DtrSync): DtrSync;
}

export function registerDtrMetrics(registry: Registry, now: () => number = Date.now): DtrMetrics {
  const requests = new Counter({
    name: "dtrcache_controller_dtr_requests_total",
    help: "HTTP requests to DTR's API (each attempt), by method, route template and status class (none: no answer).",
    labelNames: ["method", "route", "status_class"],
    registers: [registry],
  });
  const errors = new Counter({
    name: "dtrcache_controller_dtr_request_errors_total",
    help: "Failed HTTP requests to DTR's API (each attempt), by method, route template and stable error code.",
    labelNames: ["method", "route", "code"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "dtrcache_controller_dtr_request_duration_seconds",
    help: "Time of one HTTP request to DTR's API, by method and route template.",
    labelNames: ["method", "route"],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const lastSync = new Gauge({
    name: "dtrcache_controller_dtr_last_sync_timestamp_seconds",
    help: "Unix time of the cache's last DTR pass that synced fully (registration and every listed user).",
    labelNames: ["cache"],
    registers: [registry],
  });
  return {
    observeRequest(outcome) {
      requests.inc({ method: outcome.method, route: outcome.route, status_class: statusClass(outcome.status) });
      duration.observe({ method: outcome.method, route: outcome.route }, outcome.durationSeconds);
      if (outcome.errorCode !== undefined) errors.inc({ method: outcome.method, route: outcome.route, code: outcome.errorCode });
    },
    instrument(sync) {
      return {
        async apply(cache, request, signal) {
          const result = await sync.apply(cache, request, signal);
          if (summarizeDtrStatus(result).synced) lastSync.set({ cache: cache.name }, Math.floor(now() / 1000));
          return result;
        },
        async remove(removal, signal) {
          const result = await sync.remove(removal, signal);
          // The cache is gone from DTR: its "last sync" would only age into a false alert.
          lastSync.remove({ cache: removal.cacheName });
          return result;
        },
      };
    },
  };
}
