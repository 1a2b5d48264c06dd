// DOCKER_HOST handling the way the docker CLI does it: unix://PATH, tcp://HOST:PORT (TLS when
// DOCKER_TLS_VERIFY=1 or DOCKER_CERT_PATH is set, with ca.pem/cert.pem/key.pem from
// DOCKER_CERT_PATH, default ~/.docker), ssh://[user@]host[:port]. Unlike the CLI there is no
// implicit default socket: an operator must name the engine, so a controller (or a test) never
// reaches a Docker it was not pointed at.
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import Dockerode from "dockerode";

export class ConnectionError extends Error {
  override readonly name = "ConnectionError";
  constructor(
    readonly code: "DOCKER_HOST_MISSING" | "DOCKER_HOST_INVALID" | "TLS_MATERIAL_UNREADABLE",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type DockerEnv = Readonly<Record<string, string | undefined>>;

/** Options handed to dockerode; every key is set so docker-modem's own env defaults never leak in. */
export interface DockerConnection {
  readonly socketPath: string | undefined;
  readonly host: string | undefined;
  readonly port: string | undefined;
  readonly protocol: "http" | "https" | "ssh" | undefined;
  readonly username: string | undefined;
  readonly ca: Buffer | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  /** For logs: the endpoint without credentials. */
  readonly display: string;
}

/** The engine the docker CLI talks to when DOCKER_HOST is unset. */
export const DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock";

export function resolveDockerConnection(dockerHost: string | undefined, env: DockerEnv = {}): DockerConnection {
  const blank = {
    socketPath: undefined,
    host: undefined,
    port: undefined,
    protocol: undefined,
    username: undefined,
    ca: undefined,
    cert: undefined,
    key: undefined,
  };
  // unset or empty: the local engine's socket, as the docker CLI does
  if (!dockerHost) dockerHost = DEFAULT_DOCKER_HOST;
  if (dockerHost.startsWith("unix://")) {
    const socketPath = dockerHost.slice("unix://".length);
    if (!socketPath.startsWith("/")) throw new ConnectionError("DOCKER_HOST_INVALID", `DOCKER_HOST ${dockerHost}: a unix socket needs an absolute path`);
    return { ...blank, socketPath, display: dockerHost };
  }
  let url: URL;
  try {
    url = new URL(dockerHost.includes("://") ? dockerHost : `tcp://${dockerHost}`);
  } catch (error) {
    throw new ConnectionError("DOCKER_HOST_INVALID", `DOCKER_HOST ${dockerHost}: not a URL (unix://, tcp:// or ssh://)`, { cause: error });
  }
  if (url.protocol === "ssh:") {
    return { ...blank, host: url.hostname, port: url.port || "22", protocol: "ssh", username: url.username || undefined, display: `ssh://${url.host}` };
  }
  if (url.protocol !== "tcp:" && url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConnectionError("DOCKER_HOST_INVALID", `DOCKER_HOST ${dockerHost}: unsupported scheme ${url.protocol} (use unix://, tcp:// or ssh://)`);
  }
  const certPath = env["DOCKER_CERT_PATH"];
  const tls = env["DOCKER_TLS_VERIFY"] === "1" || (certPath !== undefined && certPath !== "") || url.protocol === "https:";
  const port = url.port || (tls ? "2376" : "2375");
  if (!tls) return { ...blank, host: url.hostname, port, protocol: "http", display: `tcp://${url.hostname}:${port}` };
  const dir = certPath || join(homedir(), ".docker");
  try {
    return {
      ...blank,
      host: url.hostname,
      port,
      protocol: "https",
      ca: readFileSync(join(dir, "ca.pem")),
      cert: readFileSync(join(dir, "cert.pem")),
      key: readFileSync(join(dir, "key.pem")),
      display: `tcp://${url.hostname}:${port} (TLS)`,
    };
  } catch (error) {
    throw new ConnectionError("TLS_MATERIAL_UNREADABLE", `DOCKER_TLS_VERIFY/DOCKER_CERT_PATH: cannot read ca.pem, cert.pem and key.pem in ${dir}`, {
      cause: error,
    });
  }
}

/** Builds the dockerode client; only entry points (and tests/bench) call this. */
export function createDockerClient(connection: DockerConnection): Dockerode {
  const { display: _display, ...options } = connection;
  return new Dockerode(options as Dockerode.DockerOptions);
}
