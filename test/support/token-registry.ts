// Debian's docker-registry with token authentication, plus the token service it trusts: the
// setup of a private DTR repository as seen by a registry client. The token service signs RS256
// JWTs whose x5c header carries a self-signed certificate (made with the openssl CLI) that the
// registry's `rootcertbundle` trusts. Basic credentials are checked against `users`; anonymous
// requests get a token with no access (so the registry refuses them), as a real token service does.
import { spawn } from "node:child_process";
import { createPrivateKey, randomBytes, sign, type KeyObject } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { freePort } from "../harness/ports.js";
import { readAccessLog, REGISTRY_BINARY, type AccessLogEntry } from "../harness/registry.js";

const exec = promisify(execFile);

export interface TokenRegistry {
  readonly url: string;
  readonly hostPort: string;
  readonly logFile: string;
  readonly realm: string;
  readonly service: string;
  /** A token as the service would issue it to `user` for `scopes` ("repository:name:pull,push"). */
  issue(user: string | undefined, scopes: readonly string[]): string;
  accessLog(): Promise<AccessLogEntry[]>;
  stop(): Promise<void>;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString("base64url");
}

function makeToken(key: KeyObject, certDer: Buffer, issuer: string, service: string, user: string | undefined, scopes: readonly string[]): string {
  const now = Math.floor(Date.now() / 1000);
  const access = user
    ? scopes.map((s) => {
        const [type = "", name = "", actions = ""] = s.split(":");
        return { type, name, actions: actions.split(",").filter(Boolean) };
      })
    : [];
  const header = { typ: "JWT", alg: "RS256", x5c: [certDer.toString("base64")] };
  const claims = { iss: issuer, sub: user ?? "", aud: service, exp: now + 600, nbf: now - 60, iat: now, jti: randomBytes(8).toString("hex"), access };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign("sha256", Buffer.from(input), key))}`;
}

export async function startTokenRegistry(options: { workDir: string; tokenHost: string; users: Record<string, string> }): Promise<TokenRegistry> {
  const dir = options.workDir;
  await mkdir(join(dir, "data"), { recursive: true });
  const keyFile = join(dir, "token.key");
  const certFile = join(dir, "token.crt");
  await exec("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyFile, "-out", certFile, "-days", "1", "-subj", "/CN=test-token-service"]);
  const key = createPrivateKey(await readFile(keyFile));
  const certPem = await readFile(certFile, "utf8");
  const certDer = Buffer.from(certPem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  const issuer = "test-token-service";
  const service = "test-registry";

  const tokenServer: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith("Basic ")) {
      const [u = "", p = ""] = Buffer.from(auth.slice(6), "base64").toString().split(":");
      if (options.users[u] !== p) {
        res.writeHead(401, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] }));
        return;
      }
      user = u;
    }
    const token = makeToken(key, certDer, issuer, service, user, url.searchParams.getAll("scope"));
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 600, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => tokenServer.listen(0, options.tokenHost, resolve));
  const realm = `http://${options.tokenHost}:${(tokenServer.address() as AddressInfo).port}/token`;

  const port = await freePort("127.0.0.1");
  const hostPort = `127.0.0.1:${port}`;
  const q = (v: string): string => JSON.stringify(v);
  const config = [
    "version: 0.1",
    "log:",
    "  level: info",
    "  formatter: text",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${q(join(dir, "data"))}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: ${q(hostPort)}`,
    "auth:",
    "  token:",
    `    realm: ${q(realm)}`,
    `    service: ${q(service)}`,
    `    issuer: ${q(issuer)}`,
    `    rootcertbundle: ${q(certFile)}`,
    "",
  ].join("\n");
  const configFile = join(dir, "config.yml");
  await writeFile(configFile, config);
  const logFile = join(dir, "access.log");
  const out = openSync(logFile, "a");
  const err = openSync(join(dir, "registry.log"), "a");
  const child = spawn(REGISTRY_BINARY, ["serve", configFile], { stdio: ["ignore", out, err] });
  closeSync(out);
  closeSync(err);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
    }
    await new Promise<void>((resolve) => tokenServer.close(() => resolve()));
  };
  const url = `http://${hostPort}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const r = await fetch(`${url}/v2/`);
      await r.arrayBuffer();
      if (r.status === 401) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`token-auth docker-registry did not start: ${await readFile(join(dir, "registry.log"), "utf8").catch(() => "")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    hostPort,
    logFile,
    realm,
    service,
    issue: (user, scopes) => makeToken(key, certDer, issuer, service, user, scopes),
    accessLog: () => readAccessLog(logFile),
    stop,
  };
}
