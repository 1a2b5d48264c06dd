// Debian's docker-registry with token authentication, plus the token service it trusts: the
// setup of a private DTR repository as seen by a registry client. The token service signs RS256
// JWTs whose x5c header carries a self-signed certificate (made with the openssl CLI) that the
// registry's `rootcertbundle` trusts. Basic credentials are checked against `users`; anonymous
// requests get a token with no access (so the registry refuses them), as a real token service does.
import { createPrivateKey, randomBytes, sign, type KeyObject } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { run } from "../harness/proc.js";
import { readAccessLog, startRegistry, type AccessLogEntry, type RegistryHandle } from "../harness/registry.js";

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
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-days",
    "1",
    "-subj",
    "/CN=test-token-service",
  ]);
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

  let registry: RegistryHandle;
  try {
    registry = await startRegistry({ workDir: dir, tokenAuth: { realm, service, issuer, rootCertBundle: certFile } });
  } catch (error) {
    await new Promise<void>((resolve) => tokenServer.close(() => resolve()));
    throw error;
  }
  const { url, hostPort, logFile } = registry;
  const stop = async (): Promise<void> => {
    await registry.stop();
    await new Promise<void>((resolve) => tokenServer.close(() => resolve()));
  };
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
