// HEALTHCHECK of the cache image: GET /healthz on the cache's debug listener (http.debug.addr,
// docs/cache-server.md "Observability"). The address comes from the config.yml the cache was
// started with (the argument of /start.sh in /proc/1/cmdline, default /config.yml): the
// controller renders `http.debug.addr: 0.0.0.0:<debugPort>` when a ContentCache sets debugPort,
// otherwise the cache's default 127.0.0.1:5001 applies. /healthz answers 200 whenever the process
// serves (upstream health is in its body, not its status): DTR being down must not get a cache
// that serves stale tags killed. Exit 0 healthy, 1 unhealthy (Docker's HEALTHCHECK contract).
import { readFileSync } from "node:fs";
import { request } from "node:http";

function configPath() {
  try {
    const args = readFileSync("/proc/1/cmdline", "utf8").split("\0").filter(Boolean);
    const yml = args
      .slice(1)
      .reverse()
      .find((a) => /\.ya?ml$/.test(a));
    if (yml) return yml;
  } catch {
    // not readable: the default
  }
  return "/config.yml";
}

/** host and port of http.debug.addr, 127.0.0.1:5001 when the config sets none. */
export function debugTarget(configText) {
  const match = /^\s+debug:[ \t]*\r?\n\s+addr:[ \t]*["']?([^"'\s#]+)/m.exec(configText ?? "");
  if (!match) return { host: "127.0.0.1", port: 5001 };
  const addr = match[1];
  const colon = addr.lastIndexOf(":");
  let host = colon > 0 ? addr.slice(0, colon).replace(/^\[|\]$/g, "") : "";
  if (host === "" || host === "0.0.0.0") host = "127.0.0.1";
  if (host === "::") host = "::1";
  return { host, port: Number(addr.slice(colon + 1)) };
}

function main() {
  let text = "";
  try {
    text = readFileSync(configPath(), "utf8");
  } catch {
    // no config readable: try the default address
  }
  const { host, port } = debugTarget(text);
  const req = request({ host, port, path: "/healthz", method: "GET", timeout: 2500 }, (res) => {
    res.resume();
    process.exit(res.statusCode === 200 ? 0 : 1);
  });
  req.on("timeout", () => req.destroy(new Error("timeout")));
  req.on("error", (error) => {
    console.error(`healthcheck: http://${host}:${port}/healthz: ${error.message}`);
    process.exit(1);
  });
  req.end();
}

if (process.argv[1]?.endsWith("healthcheck.mjs")) main();
