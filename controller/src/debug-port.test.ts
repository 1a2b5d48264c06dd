// spec.debugPort: the cache's debug listener (/metrics, /healthz) is rendered into its config.yml
// and published like its registry port; without it the service is exactly what it was before.
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createController } from "./controller.js";
import { memoryLogger } from "./logger.js";
import { staticSpecSource } from "./source.js";
import { FakeSwarm } from "./swarm/fake.js";
import { load, runbookText } from "./testing/specs.js";

async function deploy(text: string): Promise<{ ports: unknown; config: { http: Record<string, unknown> } }> {
  const fake = new FakeSwarm(["node-1"]);
  const controller = createController({ docker: fake, specSource: staticSpecSource(load(text)), logger: memoryLogger(), id: "test" });
  const reports = await controller.reconcileOnce();
  expect(reports.map((r) => r.error)).toEqual([undefined]);
  const service = [...fake.services.values()][0];
  const config = [...fake.configs.values()][0];
  return { ports: service?.spec.EndpointSpec?.Ports, config: parse(config?.data.toString() ?? "") as { http: Record<string, unknown> } };
}

describe("spec.debugPort", () => {
  it("renders http.debug.addr on all interfaces and publishes the port like the registry port", async () => {
    const { ports, config } = await deploy(runbookText().replace("  port: 443\n", "  port: 443\n  debugPort: 5001\n"));
    expect(config.http.debug).toEqual({ addr: "0.0.0.0:5001" });
    expect(ports).toEqual([
      { Protocol: "tcp", TargetPort: 443, PublishedPort: 443, PublishMode: "host" },
      { Protocol: "tcp", TargetPort: 5001, PublishedPort: 5001, PublishMode: "host" },
    ]);
  });

  it("without it: no debug section (the cache keeps it on its loopback) and only the registry port", async () => {
    const { ports, config } = await deploy(runbookText());
    expect(config.http.debug).toBeUndefined();
    expect(ports).toEqual([{ Protocol: "tcp", TargetPort: 443, PublishedPort: 443, PublishMode: "host" }]);
  });
});
