// Spec texts for unit tests: the crds examples with the node hostname and a few fields swapped.
// Kept beside the code (not exported from the package) so each test states only what it changes.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadCacheSpecFromText, type LoadResult } from "@dtrcache/crds";

export const EXAMPLES_DIR = fileURLToPath(new URL("../../../crds/examples/", import.meta.url));

export function runbookText(edit: { hostname?: string; blobTTL?: string; port?: number; image?: string; users?: string[]; tls?: string } = {}): string {
  let text = readFileSync(`${EXAMPLES_DIR}runbook.yaml`, "utf8");
  text = text.replace("hostname: asia-node-1", `hostname: ${edit.hostname ?? "node-1"}`);
  if (edit.blobTTL) text = text.replace("blobTTL: 24h", `blobTTL: ${edit.blobTTL}`);
  if (edit.port) text = text.replace("port: 443", `port: ${edit.port}`);
  if (edit.image) text = text.replace("image: docker/dtr-content-cache:2.6.5", `image: ${edit.image}`);
  if (edit.users) text = text.replace("users:\n    - admin", `users:\n${edit.users.map((u) => `    - ${u}`).join("\n")}`);
  if (edit.tls) text = text.replace("tls:\n    certFile: certs/cache.cert.pem\n    keyFile: certs/cache.key.pem", edit.tls);
  return text;
}

export function chainedText(hostnames: [string, string] = ["node-1", "node-2"]): string {
  return readFileSync(`${EXAMPLES_DIR}chained.yaml`, "utf8")
    .replace("hostname: eu-node-1", `hostname: ${hostnames[0]}`)
    .replace("hostname: office-node-1", `hostname: ${hostnames[1]}`);
}

export function load(text: string): LoadResult {
  const result = loadCacheSpecFromText(text, `${EXAMPLES_DIR}spec.yaml`, EXAMPLES_DIR);
  if (!result.ok) throw new Error(`test spec does not load: ${JSON.stringify(result.issues)}`);
  return result;
}
