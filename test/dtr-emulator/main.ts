// CLI entry of the DTR emulator, for the demo and for poking at it by hand:
//   node test/dist/dtr-emulator/main.js --backend http://127.0.0.1:5000 --users users.json [--port 8443]
//     [--listen 127.0.0.1] [--tls-cert cert.pem --tls-key key.pem [--tls-ca ca.pem]] [--public repo]...
// users.json: [{"username":"admin","password":"...","admin":true,"tokens":["..."]}, ...]
// Prints one JSON line {"url": ...} when ready, then one JSON line per request; stops on SIGINT/SIGTERM.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startDtrEmulator, type EmulatorUser } from "./index.js";

const USAGE = "usage: main --backend URL --users FILE [--listen HOST] [--port N] [--tls-cert FILE --tls-key FILE [--tls-ca FILE]] [--public REPO]...";

function fail(message: string): never {
  process.stderr.write(`dtr-emulator: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseUsers(file: string): EmulatorUser[] {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    fail(`cannot read users file ${file}: ${error instanceof Error ? error.message : "unreadable"}`);
  }
  if (!Array.isArray(value)) fail(`${file}: expected a JSON array of {username, password, admin?, tokens?}`);
  return value.map((entry: unknown, index): EmulatorUser => {
    const record = (typeof entry === "object" && entry !== null ? entry : {}) as Record<string, unknown>;
    if (typeof record.username !== "string" || record.username === "") fail(`${file}: [${index}].username must be a non-empty string`);
    if (typeof record.password !== "string") fail(`${file}: [${index}].password must be a string`);
    const tokens = record.tokens ?? [];
    if (!Array.isArray(tokens) || !tokens.every((token) => typeof token === "string")) fail(`${file}: [${index}].tokens must be an array of strings`);
    return { username: record.username, password: record.password, admin: record.admin === true, tokens };
  });
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        backend: { type: "string" },
        users: { type: "string" },
        listen: { type: "string", default: "127.0.0.1" },
        port: { type: "string", default: "0" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "tls-ca": { type: "string" },
        public: { type: "string", multiple: true, default: [] },
        help: { type: "boolean", default: false },
      },
      strict: true,
    });
  } catch (error) {
    fail(error instanceof Error ? error.message : "bad arguments");
  }
  const args = parsed.values;
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (args.backend === undefined) fail("--backend is required");
  if (args.users === undefined) fail("--users is required");
  const port = Number(args.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail("--port must be 0..65535");
  if ((args["tls-cert"] === undefined) !== (args["tls-key"] === undefined)) fail("--tls-cert and --tls-key go together");
  const tls =
    args["tls-cert"] !== undefined && args["tls-key"] !== undefined
      ? {
          cert: readFileSync(args["tls-cert"], "utf8"),
          key: readFileSync(args["tls-key"], "utf8"),
          ca: args["tls-ca"] === undefined ? undefined : readFileSync(args["tls-ca"], "utf8"),
        }
      : undefined;

  const emulator = await startDtrEmulator({
    listenHost: args.listen,
    port,
    backendRegistryUrl: args.backend,
    users: parseUsers(args.users),
    tls,
    publicRepositories: args.public,
    // Request bodies are API writes ({name, host} or {contentCacheUUID}); they hold no secrets.
    onRequest: (entry) => process.stdout.write(`${JSON.stringify(entry)}\n`),
  });
  process.stdout.write(`${JSON.stringify({ url: emulator.url })}\n`);
  const stop = (): void => {
    emulator.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : "failed to start"));
