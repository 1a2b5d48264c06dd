// deploy/monitoring checked by Prometheus's own tool (Debian's prometheus package, installed by the
// harness): the alert rules, and the example scrape configuration that loads them.
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { run } from "../harness/proc.js";
import { MONITORING_DIR } from "../monitoring/assets.js";

describe("promtool", () => {
  it("accepts the alert rules", async () => {
    const r = await run("promtool", ["check", "rules", join(MONITORING_DIR, "alerts.yml")]);
    expect(r.stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it("accepts the example scrape configuration with its rule file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "promtool-"));
    try {
      for (const f of ["alerts.yml", "prometheus.example.yml"]) await copyFile(join(MONITORING_DIR, f), join(dir, f));
      await writeFile(join(dir, "dtrcache-status-token"), "example-token\n", { mode: 0o600 });
      const r = await run("promtool", ["check", "config", join(dir, "prometheus.example.yml")]);
      expect(r.stdout).toContain("SUCCESS");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
