#!/usr/bin/env node
// How long a DTR registration deleted by hand, or DTR restarted empty, takes to be restored by a
// running controller on real time and production intervals (resync 30 s, DTR verification 60 s,
// drift check --check-ms, default 10 s; 0 = the check off, as before issue 10 defect 9). The
// numbers in docs/dtr.md ("Drift detection"). Fake Swarm, the DTR emulator in-process; run after
// `npx tsc -b controller test`, on the project's Node 24:
//
//   node test/bench/controller/dtr-drift.mjs [SAMPLES] [--check-ms MS] [--restart]
//
// Each sample waits a random part of the check interval (so the deletion lands anywhere between
// two checks), deletes the registration (--restart: restarts the emulator empty on its port), and
// measures until the registration is back with every user pointing at it.
import { setTimeout as sleep } from "node:timers/promises";
import { loadCacheSpecFromText } from "@dtrcache/crds";
import { createController } from "../../../controller/dist/controller.js";
import { createDtrSync } from "../../../controller/dist/dtr/dtr-sync.js";
import { staticSpecSource } from "../../../controller/dist/source.js";
import { FakeSwarm } from "../../../controller/dist/swarm/fake.js";
import { startDtrEmulator } from "../../dist/dtr-emulator/index.js";

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const value = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const samples = Number(args.find((a, i) => /^\d+$/.test(a) && !args[i - 1]?.startsWith("--")) ?? 5);
const checkMs = value("--check-ms", 10_000);
const restart = flag("--restart");
const PASSWORD = "adm1n-Pa55";
const USERS = ["u000", "u001", "u002"];
const users = [{ username: "admin", password: PASSWORD, admin: true }, ...USERS.map((username) => ({ username, password: "x" }))];
const admin = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString("base64")}` };

const start = (port = 0) => startDtrEmulator({ listenHost: "127.0.0.1", port, backendRegistryUrl: "http://127.0.0.1:9", users });
let dtr = await start();
const port = Number(new URL(dtr.url).port);
const text = `apiVersion: cache.dtr.io/v1alpha1\nkind: DTR\nmetadata: {name: main}\nspec: {url: "${dtr.url}", admin: {username: admin, password: {env: DTR_PW}}}\n---\napiVersion: cache.dtr.io/v1alpha1\nkind: ContentCache\nmetadata: {name: edge}\nspec:\n  node: {hostname: node-1}\n  externalURL: http://edge.example.com:5000\n  port: 5000\n  tls: {disabled: true}\n  users: [${USERS.join(", ")}]\n`;
const spec = loadCacheSpecFromText(text, "drift.yaml");
if (!spec.ok) throw new Error(JSON.stringify(spec.issues));
const sync = createDtrSync({ env: { DTR_PW: PASSWORD } });
const controller = createController({
  docker: new FakeSwarm(["node-1"]),
  specSource: staticSpecSource(spec),
  dtrSync: sync,
  id: "bench",
  settleMs: 0,
  dtrCheckMs: checkMs,
});
await controller.reconcileOnce();
await controller.reconcileOnce();
await controller.start();
await controller.idle();

const restored = () => {
  const reg = dtr.contentCaches().find((c) => c.name === "edge");
  const settings = dtr.settings();
  return reg !== undefined && USERS.every((u) => settings[u] === reg.id);
};
if (!restored()) throw new Error("not converged at start");
const results = [];
for (let i = 0; i < samples; i += 1) {
  await sleep(Math.random() * (checkMs > 0 ? checkMs : 10_000));
  const t0 = performance.now();
  if (restart) {
    await dtr.stop();
    dtr = await start(port);
  } else {
    const reg = dtr.contentCaches().find((c) => c.name === "edge");
    await fetch(`${dtr.url}/api/v0/content_caches/${reg.id}`, { method: "DELETE", headers: admin });
  }
  while (!restored()) await sleep(20);
  results.push((performance.now() - t0) / 1000);
  console.log(`sample ${i + 1}: restored after ${results.at(-1).toFixed(2)} s`);
}
const sorted = [...results].sort((a, b) => a - b);
console.log(
  `check ${checkMs} ms, ${restart ? "DTR restarted empty" : "registration deleted"}: ${samples} samples, min ${sorted[0].toFixed(2)} s, median ${sorted[Math.floor(sorted.length / 2)].toFixed(2)} s, max ${sorted.at(-1).toFixed(2)} s`,
);
await controller.stop();
await sync.close();
await dtr.stop();
