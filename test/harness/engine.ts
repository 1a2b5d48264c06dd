import { request } from "node:http";

/** Path of the unix socket in a unix:///... DOCKER_HOST. */
export function socketPath(dockerHost: string): string {
  return dockerHost.replace(/^unix:\/\//, "");
}

/** GET /_ping on an engine's socket: true when the engine answers OK. */
export async function ping(dockerHost: string): Promise<boolean> {
  return await new Promise((resolve) => {
    const req = request({ socketPath: socketPath(dockerHost), path: "/_ping", method: "GET", timeout: 1000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode === 200));
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}
