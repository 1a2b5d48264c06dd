import { generateKeyPairSync } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatIssue } from "./issues.js";
import { loadCacheSpec, loadCacheSpecFromText } from "./load.js";

const examples = fileURLToPath(new URL("../examples/", import.meta.url));
let dir = "";

beforeAll(() => {
  // The example PEM files plus deliberately wrong ones, in a scratch directory per run.
  dir = mkdtempSync(path.join(tmpdir(), "crds-load-"));
  cpSync(path.join(examples, "certs"), path.join(dir, "certs"), { recursive: true });
  const other = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  writeFileSync(path.join(dir, "certs", "other.key.pem"), other.privateKey.export({ type: "pkcs8", format: "pem" }));
  const encrypted = generateKeyPairSync("ec", {
    namedCurve: "prime256v1",
    privateKeyEncoding: { type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "x" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  writeFileSync(path.join(dir, "certs", "encrypted.key.pem"), encrypted.privateKey);
  writeFileSync(path.join(dir, "certs", "notes.txt"), "this is not PEM\n");
  writeFileSync(path.join(dir, "certs", "broken.cert.pem"), "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
  mkdirSync(path.join(dir, "certs", "subdir"));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Lines 1-10: a valid DTR document and a separator; lines 11-15 open the cache document, whose
// spec fields start at line 16. Every case below counts lines from these constants.
const DTR = `apiVersion: cache.dtr.io/v1alpha1
kind: DTR
metadata:
  name: dtr
spec:
  url: https://dtr.example.com
  admin:
    username: admin
    password: {env: DTR_PASSWORD}
---
`;
const CACHE_HEAD = `apiVersion: cache.dtr.io/v1alpha1
kind: ContentCache
metadata:
  name: asia
spec:
`;
const NODE = "  node: {hostname: node-1}\n";
const URL_LINE = "  externalURL: https://cache.example.com\n";
/** A spec with one DTR and one cache; `spec` lines start at line 16. */
const cache = (spec: string): string => `${DTR}${CACHE_HEAD}${spec}`;
/** A second cache document after `first` (a full cache text); returns the text. */
const plus = (first: string, name: string, spec: string): string =>
  `${first}---\napiVersion: cache.dtr.io/v1alpha1\nkind: ContentCache\nmetadata:\n  name: ${name}\nspec:\n${spec}`;
const valid = cache(NODE + URL_LINE);
// valid is 17 lines; a document appended by plus() starts with `---` on line 18, has its name on
// line 22, `spec:` on line 23 and its spec fields from line 24.

interface Case {
  name: string;
  text: string;
  code: string;
  /** line:column of the first issue */
  at: string;
  path: string;
  says: string;
}

const cases: Case[] = [
  // YAML syntax
  { name: "an unclosed flow mapping", text: cache("  node: {hostname: node-1\n" + URL_LINE), code: "YAML_SYNTAX", at: "17:3", path: "", says: "" },
  { name: "a tab used for indentation", text: cache(NODE + "\texternalURL: https://cache.example.com\n"), code: "YAML_SYNTAX", at: "17:1", path: "", says: "" },
  { name: "a key given twice", text: cache(NODE + URL_LINE + "  port: 443\n  port: 444\n"), code: "YAML_SYNTAX", at: "19:3", path: "", says: "unique" },
  {
    name: "an unterminated quoted string",
    text: cache(NODE + '  externalURL: "https://cache.example.com\n'),
    code: "YAML_SYNTAX",
    at: "18:1",
    path: "",
    says: "Missing closing",
  },
  // document shape, apiVersion, kind
  { name: "a document that is a list", text: `${DTR}- a\n- b\n`, code: "NOT_A_MAPPING", at: "11:1", path: "", says: "document 2 must be a mapping" },
  {
    name: "a wrong apiVersion",
    text: valid.replace("apiVersion: cache.dtr.io/v1alpha1\nkind: ContentCache", "apiVersion: v1\nkind: ContentCache"),
    code: "WRONG_API_VERSION",
    at: "11:13",
    path: "apiVersion",
    says: 'must be cache.dtr.io/v1alpha1; got "v1"',
  },
  {
    name: "a missing apiVersion",
    text: valid.replace("apiVersion: cache.dtr.io/v1alpha1\nkind: ContentCache", "kind: ContentCache"),
    code: "WRONG_API_VERSION",
    at: "11:1",
    path: "apiVersion",
    says: "it is missing",
  },
  {
    name: "an unknown kind",
    text: valid.replace("kind: ContentCache", "kind: Cache"),
    code: "WRONG_KIND",
    at: "12:7",
    path: "kind",
    says: 'must be DTR or ContentCache; got "Cache"',
  },
  {
    name: "a name with capitals and underscores",
    text: valid.replace("name: asia", "name: Region_Asia"),
    code: "INVALID_FIELD",
    at: "14:9",
    path: "metadata.name",
    says: '"Region_Asia" must be lower-case',
  },
  {
    name: "a missing metadata",
    text: valid.replace("metadata:\n  name: asia\n", ""),
    code: "MISSING_FIELD",
    at: "11:1",
    path: "metadata",
    says: "is required",
  },
  {
    name: "an unknown metadata field",
    text: valid.replace("  name: asia\n", "  name: asia\n  namespace: x\n"),
    code: "UNKNOWN_FIELD",
    at: "15:3",
    path: "metadata.namespace",
    says: 'unknown field "namespace"',
  },
  // wrong types and values
  {
    name: "a port written as a string",
    text: cache(NODE + URL_LINE + '  port: "443"\n'),
    code: "INVALID_FIELD",
    at: "18:9",
    path: "spec.port",
    says: 'expected a number, got string "443"',
  },
  {
    name: "a port above 65535",
    text: cache(NODE + URL_LINE + "  port: 70000\n"),
    code: "INVALID_FIELD",
    at: "18:9",
    path: "spec.port",
    says: "70000 must be at most 65535",
  },
  { name: "port zero", text: cache(NODE + URL_LINE + "  port: 0\n"), code: "INVALID_FIELD", at: "18:9", path: "spec.port", says: "0 must be at least 1" },
  {
    name: "a fractional replica count",
    text: cache(NODE + URL_LINE + "  replicas: 1.5\n"),
    code: "INVALID_FIELD",
    at: "18:13",
    path: "spec.replicas",
    says: "expected an int",
  },
  {
    name: "zero replicas",
    text: cache(NODE + URL_LINE + "  replicas: 0\n"),
    code: "INVALID_FIELD",
    at: "18:13",
    path: "spec.replicas",
    says: "must be at least 1",
  },
  {
    name: "an unknown publish mode",
    text: cache(NODE + URL_LINE + "  publishMode: routing\n"),
    code: "INVALID_FIELD",
    at: "18:16",
    path: "spec.publishMode",
    says: '"routing" is not one of host, ingress',
  },
  {
    name: "an unknown log level",
    text: cache(NODE + URL_LINE + "  logLevel: verbose\n"),
    code: "INVALID_FIELD",
    at: "18:13",
    path: "spec.logLevel",
    says: '"verbose" is not one of error, warn, info, debug',
  },
  {
    name: "users given as one string",
    text: cache(NODE + URL_LINE + "  users: alice\n"),
    code: "INVALID_FIELD",
    at: "18:10",
    path: "spec.users",
    says: 'expected a list, got string "alice"',
  },
  {
    name: "an empty user name",
    text: cache(NODE + URL_LINE + '  users: [alice, ""]\n'),
    code: "INVALID_FIELD",
    at: "18:18",
    path: "spec.users[1]",
    says: "must not be empty",
  },
  {
    name: "a node with neither hostname nor label",
    text: cache("  node: {}\n" + URL_LINE),
    code: "INVALID_FIELD",
    at: "16:9",
    path: "spec.node",
    says: "must be {hostname: NODE} or {existingLabel: key=value}",
  },
  {
    name: "a node with both hostname and label",
    text: cache("  node: {hostname: a, existingLabel: b=c}\n" + URL_LINE),
    code: "INVALID_FIELD",
    at: "16:9",
    path: "spec.node",
    says: "must be {hostname: NODE} or {existingLabel: key=value}",
  },
  {
    name: "an existing label without a value",
    text: cache("  node: {existingLabel: dtr.cache}\n" + URL_LINE),
    code: "INVALID_FIELD",
    at: "16:25",
    path: "spec.node.existingLabel",
    says: '"dtr.cache" must be key=value',
  },
  {
    name: "a node label without a value",
    text: cache(NODE + URL_LINE + "  nodeLabel: dtr.cache\n"),
    code: "INVALID_FIELD",
    at: "18:14",
    path: "spec.nodeLabel",
    says: '"dtr.cache" must be key=value',
  },
  {
    name: "storage with both volume and bind",
    text: cache(NODE + URL_LINE + "  storage: {volume: blobs, bind: /data}\n"),
    code: "INVALID_FIELD",
    at: "18:34",
    path: "spec.storage.bind",
    says: '"/data" cannot be combined with storage.volume',
  },
  {
    name: "a relative storage path",
    text: cache(NODE + URL_LINE + "  storage: {path: data}\n"),
    code: "INVALID_FIELD",
    at: "18:19",
    path: "spec.storage.path",
    says: '"data" must be an absolute path',
  },
  {
    name: "a storage size in GB",
    text: cache(NODE + URL_LINE + "  storage:\n    maxSize: 20GB\n"),
    code: "INVALID_FIELD",
    at: "19:14",
    path: "spec.storage.maxSize",
    says: '"20GB" must be a size such as 20GiB',
  },
  {
    name: "a volume name with a space",
    text: cache(NODE + URL_LINE + "  storage:\n    volume: my blobs\n"),
    code: "INVALID_FIELD",
    at: "19:13",
    path: "spec.storage.volume",
    says: '"my blobs" must be a Docker volume name',
  },
  {
    name: "tls with files and generate together",
    text: cache(NODE + URL_LINE + "  tls: {certFile: a.pem, keyFile: b.pem, generate: true}\n"),
    code: "INVALID_FIELD",
    at: "18:8",
    path: "spec.tls",
    says: "must be exactly one of {certFile, keyFile}, {generate: true} or {disabled: true}",
  },
  {
    name: "tls with a certificate but no key",
    text: cache(NODE + URL_LINE + "  tls:\n    certFile: certs/cache.cert.pem\n"),
    code: "MISSING_FIELD",
    at: "18:3",
    path: "spec.tls.keyFile",
    says: "is required",
  },
  {
    name: "tls disabled: false",
    text: cache(NODE + URL_LINE + "  tls: {disabled: false}\n"),
    code: "INVALID_FIELD",
    at: "18:19",
    path: "spec.tls.disabled",
    says: "false is not one of true",
  },
  // unknown fields
  {
    name: "a field in the wrong case",
    text: cache(NODE + URL_LINE + "  blobTtl: 24h\n"),
    code: "UNKNOWN_FIELD",
    at: "18:3",
    path: "spec.blobTtl",
    says: 'unknown field "blobTtl" (did you mean "blobTTL"?)',
  },
  { name: "a status section at the top", text: `${valid}status: {}\n`, code: "UNKNOWN_FIELD", at: "18:1", path: "status", says: 'unknown field "status"' },
  {
    name: "an unknown trust option",
    text: DTR.replace("  admin:", "  trust: {insecure: true}\n  admin:") + CACHE_HEAD + NODE + URL_LINE,
    code: "UNKNOWN_FIELD",
    at: "7:11",
    path: "spec.trust.insecure",
    says: 'unknown field "insecure"',
  },
  {
    name: "a misspelt field in an upstream",
    text: cache(NODE + URL_LINE + "  upstreams: [{cache: eu, name: x}]\n"),
    code: "UNKNOWN_FIELD",
    at: "18:27",
    path: "spec.upstreams[0].name",
    says: 'unknown field "name"',
  },
  // durations
  {
    name: "a duration in words",
    text: cache(NODE + URL_LINE + "  blobTTL: 24 hours\n"),
    code: "INVALID_FIELD",
    at: "18:12",
    path: "spec.blobTTL",
    says: '"24 hours" is not a duration (use e.g. 24h)',
  },
  {
    name: "a duration in days",
    text: cache(NODE + URL_LINE + "  blobTTL: 1d\n"),
    code: "INVALID_FIELD",
    at: "18:12",
    path: "spec.blobTTL",
    says: '"1d" is not a duration',
  },
  {
    name: "a fractional duration",
    text: cache(NODE + URL_LINE + "  blobTTL: 1.5h\n"),
    code: "INVALID_FIELD",
    at: "18:12",
    path: "spec.blobTTL",
    says: '"1.5h" is not a duration',
  },
  // Values the cache-server would refuse at start (issue 10, defect 5): refused here instead.
  {
    name: "a zero blob TTL",
    text: cache(NODE + URL_LINE + "  blobTTL: 0s\n"),
    code: "INVALID_FIELD",
    at: "18:12",
    path: "spec.blobTTL",
    says: "must be at least 1ms",
  },
  {
    name: "a bare-number blob TTL under 1ms",
    text: cache(NODE + URL_LINE + "  blobTTL: 999999\n"),
    code: "INVALID_FIELD",
    at: "18:12",
    path: "spec.blobTTL",
    says: "must be at least 1ms",
  },
  {
    name: "a zero size cap",
    text: cache(NODE + URL_LINE + "  storage:\n    maxSize: 0B\n"),
    code: "INVALID_FIELD",
    at: "19:14",
    path: "spec.storage.maxSize",
    says: "must be a size from 1B",
  },
  {
    name: "a size cap under one byte",
    text: cache(NODE + URL_LINE + "  storage:\n    maxSize: 0.5B\n"),
    code: "INVALID_FIELD",
    at: "19:14",
    path: "spec.storage.maxSize",
    says: "must be a size from 1B",
  },
  {
    name: "a size cap past 8191TiB",
    text: cache(NODE + URL_LINE + "  storage:\n    maxSize: 8192TiB\n"),
    code: "INVALID_FIELD",
    at: "19:14",
    path: "spec.storage.maxSize",
    says: "must be a size from 1B",
  },
  {
    name: "a boolean duration",
    text: cache(NODE + URL_LINE + "  blobTTL: true\n"),
    code: "INVALID_FIELD",
    at: "18:12",
    path: "spec.blobTTL",
    says: "true must be a duration such as 24h",
  },
  // URLs
  {
    name: "an external URL without a scheme",
    text: cache(NODE + "  externalURL: cache.example.com\n"),
    code: "INVALID_FIELD",
    at: "17:16",
    path: "spec.externalURL",
    says: '"cache.example.com" must be an http:// or https:// URL',
  },
  {
    name: "an external URL with a path",
    text: cache(NODE + "  externalURL: https://cache.example.com/v2\n"),
    code: "INVALID_FIELD",
    at: "17:16",
    path: "spec.externalURL",
    says: "no path",
  },
  { name: "a missing external URL", text: cache(NODE), code: "MISSING_FIELD", at: "15:1", path: "spec.externalURL", says: "is required" },
  {
    name: "an ftp DTR URL",
    text: DTR.replace("https://dtr.example.com", "ftp://dtr.example.com") + CACHE_HEAD + NODE + URL_LINE,
    code: "INVALID_FIELD",
    at: "6:8",
    path: "spec.url",
    says: '"ftp://dtr.example.com" must be an http:// or https:// URL',
  },
  {
    name: "an upstream URL with a query",
    text: cache(NODE + URL_LINE + "  upstreams:\n    - https://up.example.com?x=1\n"),
    code: "INVALID_FIELD",
    at: "19:7",
    path: "spec.upstreams[0]",
    says: "no path, credentials or query",
  },
  {
    name: "an upstream that is a number",
    text: cache(NODE + URL_LINE + "  upstreams: [5]\n"),
    code: "INVALID_FIELD",
    at: "18:15",
    path: "spec.upstreams[0]",
    says: "5 must be a URL or {cache: NAME}",
  },
  {
    name: "an upstream cache name with capitals",
    text: cache(NODE + URL_LINE + "  upstreams: [{cache: EU}]\n"),
    code: "INVALID_FIELD",
    at: "18:23",
    path: "spec.upstreams[0].cache",
    says: '"EU" must be lower-case',
  },
  // secrets
  {
    name: "an inline admin password",
    text: DTR.replace("{env: DTR_PASSWORD}", "hunter2") + CACHE_HEAD + NODE + URL_LINE,
    code: "INLINE_SECRET",
    at: "9:15",
    path: "spec.admin.password",
    says: "inline secrets are not allowed; use {env: NAME}, {file: PATH} or {secret: NAME}",
  },
  {
    name: "an inline token beside the admin",
    text: DTR.replace("    username: admin", "    username: admin\n    token: abc123") + CACHE_HEAD + NODE + URL_LINE,
    code: "INLINE_SECRET",
    at: "9:12",
    path: "spec.admin.token",
    says: "inline secrets are not allowed",
  },
  {
    name: "a password reference of an unknown form",
    text: DTR.replace("{env: DTR_PASSWORD}", "{value: hunter2}") + CACHE_HEAD + NODE + URL_LINE,
    code: "INVALID_FIELD",
    at: "9:15",
    path: "spec.admin.password",
    says: "must be {env: NAME}, {file: PATH} or {secret: NAME}",
  },
  {
    name: "a password env name that is not a variable",
    text: DTR.replace("{env: DTR_PASSWORD}", '{env: "hunter 2"}') + CACHE_HEAD + NODE + URL_LINE,
    code: "INVALID_FIELD",
    at: "9:21",
    path: "spec.admin.password.env",
    says: "the given value must be an environment variable name",
  },
  {
    name: "a certificate pasted inline",
    text: cache(NODE + URL_LINE + '  tls: {certFile: "-----BEGIN CERTIFICATE-----\\nMIIB", keyFile: certs/cache.key.pem}\n'),
    code: "INLINE_SECRET",
    at: "18:19",
    path: "spec.tls.certFile",
    says: "inline PEM material is not allowed",
  },
  // referenced files
  {
    name: "a certificate file that does not exist",
    text: cache(NODE + URL_LINE + "  tls: {certFile: certs/missing.pem, keyFile: certs/cache.key.pem}\n"),
    code: "FILE_NOT_FOUND",
    at: "18:19",
    path: "spec.tls.certFile",
    says: '"certs/missing.pem" does not exist',
  },
  {
    name: "a certificate path that is a directory",
    text: cache(NODE + URL_LINE + "  tls: {certFile: certs/subdir, keyFile: certs/cache.key.pem}\n"),
    code: "FILE_NOT_FOUND",
    at: "18:19",
    path: "spec.tls.certFile",
    says: '"certs/subdir" is a directory',
  },
  {
    name: "a key file that holds a certificate",
    text: cache(NODE + URL_LINE + "  tls: {certFile: certs/cache.cert.pem, keyFile: certs/cache.cert.pem}\n"),
    code: "WRONG_PEM_KIND",
    at: "18:50",
    path: "spec.tls.keyFile",
    says: "must hold exactly one PEM PRIVATE KEY block; it holds a CERTIFICATE block",
  },
  {
    name: "a certificate file that holds a key",
    text: cache(NODE + URL_LINE + "  tls: {certFile: certs/cache.key.pem, keyFile: certs/cache.key.pem}\n"),
    code: "WRONG_PEM_KIND",
    at: "18:19",
    path: "spec.tls.certFile",
    says: "must hold PEM CERTIFICATE block(s) only; it holds a PRIVATE KEY block",
  },
  {
    name: "an encrypted key",
    text: cache(NODE + URL_LINE + "  tls: {certFile: certs/cache.cert.pem, keyFile: certs/encrypted.key.pem}\n"),
    code: "WRONG_PEM_KIND",
    at: "18:50",
    path: "spec.tls.keyFile",
    says: "encrypted private key",
  },
  {
    name: "a key of another certificate",
    text: cache(NODE + URL_LINE + "  tls: {certFile: certs/cache.cert.pem, keyFile: certs/other.key.pem}\n"),
    code: "KEY_MISMATCH",
    at: "18:50",
    path: "spec.tls.keyFile",
    says: "is not the private key of the certificate",
  },
  {
    name: "a certificate block that does not parse",
    text: cache(NODE + URL_LINE + "  tls: {certFile: certs/broken.cert.pem, keyFile: certs/cache.key.pem}\n"),
    code: "WRONG_PEM_KIND",
    at: "18:19",
    path: "spec.tls.certFile",
    says: "does not parse as X.509",
  },
  {
    name: "a DTR CA file that is not PEM",
    text: DTR.replace("  admin:", "  trust: {caFile: certs/notes.txt}\n  admin:") + CACHE_HEAD + NODE + URL_LINE,
    code: "WRONG_PEM_KIND",
    at: "7:19",
    path: "spec.trust.caFile",
    says: "it holds no PEM block",
  },
  {
    name: "a missing extra CA file",
    text: cache(NODE + URL_LINE + "  extraCAFiles:\n    - certs/dtr.cert.pem\n    - certs/gone.pem\n"),
    code: "FILE_NOT_FOUND",
    at: "20:7",
    path: "spec.extraCAFiles[1]",
    says: '"certs/gone.pem" does not exist',
  },
  // rules across documents
  {
    name: "two caches with one name",
    text: plus(valid, "asia", "  node: {hostname: node-2}\n  nodeLabel: a=b\n  externalURL: https://other.example.com\n"),
    code: "DUPLICATE_NAME",
    at: "22:9",
    path: "metadata.name",
    says: 'ContentCache "asia" is already defined at caches.yaml:11',
  },
  {
    name: "two DTRs with one name",
    text: DTR + DTR + CACHE_HEAD + "  dtr: dtr\n" + NODE + URL_LINE,
    code: "DUPLICATE_NAME",
    at: "14:9",
    path: "metadata.name",
    says: 'DTR "dtr" is already defined at caches.yaml:1',
  },
  {
    name: "a reference to an unknown DTR",
    text: cache("  dtr: prod\n" + NODE + URL_LINE),
    code: "UNKNOWN_REFERENCE",
    at: "16:8",
    path: "spec.dtr",
    says: 'no DTR named "prod" (known: "dtr")',
  },
  {
    name: "a cache without any DTR document",
    text: CACHE_HEAD + NODE + URL_LINE,
    code: "AMBIGUOUS_DTR",
    at: "5:1",
    path: "spec.dtr",
    says: "the spec has no DTR document",
  },
  {
    name: "a cache that omits dtr among two DTRs",
    text: DTR + DTR.replace("name: dtr", "name: dtr-2") + CACHE_HEAD + NODE + URL_LINE,
    code: "AMBIGUOUS_DTR",
    at: "25:1",
    path: "spec.dtr",
    says: 'more than one DTR ("dtr", "dtr-2")',
  },
  {
    name: "a cache that is its own upstream",
    text: cache(NODE + URL_LINE + "  upstreams: [{cache: asia}]\n"),
    code: "CHAIN_CYCLE",
    at: "18:23",
    path: "spec.upstreams[0].cache",
    says: 'a cache cannot be its own upstream ("asia")',
  },
  {
    name: "two caches chained in a loop",
    text: plus(
      cache(NODE + URL_LINE + "  upstreams: [{cache: eu}]\n"),
      "eu",
      "  node: {hostname: node-2}\n  nodeLabel: a=b\n  externalURL: https://eu.example.com\n  upstreams: [{cache: asia}]\n",
    ),
    code: "CHAIN_CYCLE",
    at: "28:23",
    path: "spec.upstreams[0].cache",
    says: "upstream chain loops: asia -> eu -> asia",
  },
  {
    name: "an upstream cache that does not exist",
    text: cache(NODE + URL_LINE + "  upstreams: [{cache: nowhere}]\n"),
    code: "UNKNOWN_REFERENCE",
    at: "18:23",
    path: "spec.upstreams[0].cache",
    says: 'no ContentCache named "nowhere"',
  },
  {
    name: "replicas on a single hostname",
    text: cache(NODE + URL_LINE + "  replicas: 3\n"),
    code: "REPLICAS_NEED_LABEL",
    at: "18:13",
    path: "spec.replicas",
    says: "3 replicas need node.existingLabel",
  },
  {
    name: "two caches on one host and port",
    text: plus(valid, "eu", "  node: {hostname: node-1}\n  nodeLabel: a=b\n  externalURL: https://eu.example.com\n"),
    code: "PORT_CLASH",
    at: "23:1",
    path: "spec.port",
    says: 'port 443 is also used by cache "asia"; both run on node "node-1"',
  },
  {
    name: "port 5001 with the debug listener at its default (the cache would refuse to start)",
    text: cache(NODE + URL_LINE + "  port: 5001\n"),
    code: "INVALID_FIELD",
    at: "18:9",
    path: "spec.port",
    says: "5001 is the cache's own debug listener port while debugPort is unset",
  },
  {
    name: "a debug port equal to the port",
    text: cache(NODE + URL_LINE + "  port: 5000\n  debugPort: 5000\n"),
    code: "INVALID_FIELD",
    at: "19:14",
    path: "spec.debugPort",
    says: "must differ from port",
  },
  {
    name: "a port that another cache on the node publishes as its debug port",
    text: plus(
      cache(NODE + URL_LINE + "  debugPort: 5001\n"),
      "eu",
      "  node: {hostname: node-1}\n  nodeLabel: a=b\n  externalURL: https://eu.example.com\n  port: 5001\n  debugPort: 5002\n",
    ),
    code: "PORT_CLASH",
    at: "28:9",
    path: "spec.port",
    says: 'port 5001 is also used by cache "asia" (as its debugPort); both run on node "node-1"',
  },
  {
    name: "two caches on one node with one debug port",
    text: plus(
      cache(NODE + URL_LINE + "  debugPort: 5001\n"),
      "eu",
      "  node: {hostname: node-1}\n  nodeLabel: a=b\n  externalURL: https://eu.example.com\n  port: 5443\n  debugPort: 5001\n",
    ),
    code: "PORT_CLASH",
    at: "29:14",
    path: "spec.debugPort",
    says: 'port 5001 is also used by cache "asia" (as its debugPort)',
  },
  {
    name: "an ingress port used by a cache elsewhere",
    text: plus(valid, "eu", "  node: {hostname: node-2}\n  nodeLabel: a=b\n  publishMode: ingress\n  externalURL: https://eu.example.com\n"),
    code: "PORT_CLASH",
    at: "23:1",
    path: "spec.port",
    says: "an ingress port is published on every node",
  },
  {
    name: "two hostnames sharing the default node label",
    text: plus(valid, "eu", "  node: {hostname: node-2}\n  externalURL: https://eu.example.com\n  port: 5443\n"),
    code: "LABEL_CONFLICT",
    at: "23:1",
    path: "spec.nodeLabel",
    says: '"dtr.cache=true" also places cache "asia" (node "node-1"); both caches would run on both nodes',
  },
  {
    name: "an existing label equal to another cache's node label",
    text: plus(valid, "eu", "  node: {existingLabel: dtr.cache=true}\n  externalURL: https://eu.example.com\n  port: 5443\n"),
    code: "LABEL_CONFLICT",
    at: "24:25",
    path: "spec.node.existingLabel",
    says: 'is the nodeLabel the controller sets for cache "asia"',
  },
  {
    name: "two caches with one external URL",
    text: plus(valid, "eu", "  node: {hostname: node-2}\n  nodeLabel: a=b\n  externalURL: https://cache.example.com:443\n"),
    code: "DUPLICATE_URL",
    at: "26:16",
    path: "spec.externalURL",
    says: 'is also the externalURL of cache "asia"',
  },
  {
    name: "a user assigned to two caches",
    text: plus(
      cache(NODE + URL_LINE + "  users: [alice]\n"),
      "eu",
      "  node: {hostname: node-2}\n  nodeLabel: a=b\n  externalURL: https://eu.example.com\n  users: [bob, alice]\n",
    ),
    code: "DUPLICATE_USER",
    at: "28:16",
    path: "spec.users[1]",
    says: '"alice" is already assigned to cache "asia"',
  },
];

describe("loadCacheSpecFromText rejects malformed specs", () => {
  it("has a case for each kind of mistake", () => {
    expect(cases.length).toBeGreaterThanOrEqual(45);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(cases)("reports $code for $name", (c) => {
    const result = loadCacheSpecFromText(c.text, "caches.yaml", dir);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const first = result.issues[0];
    expect(first?.code).toBe(c.code);
    expect(first?.path).toBe(c.path);
    const prefix = c.path === "" ? `caches.yaml:${c.at} ` : `caches.yaml:${c.at} ${c.path}: `;
    const message = first ? formatIssue(first) : "";
    expect(message.startsWith(prefix), message).toBe(true);
    expect(message).toContain(c.says);
    expect(message).not.toContain("\n");
  });
});

describe("secrets in error messages", () => {
  it.each([
    ["an inline password", DTR.replace("{env: DTR_PASSWORD}", "Sup3rS3cretValue")],
    ["an inline password as a number", DTR.replace("{env: DTR_PASSWORD}", "8675309123")],
    ["an inline api key in an unknown field", DTR.replace("    username: admin", "    username: admin\n    apiKey: Sup3rS3cretValue")],
    ["a secret pasted as the env name", DTR.replace("{env: DTR_PASSWORD}", '{env: "Sup3rS3cretValue!"}')],
    ["a password inside an upstream URL", `${DTR}${CACHE_HEAD}${NODE}${URL_LINE}  upstreams: ["https://bob:Sup3rS3cretValue@up.example.com/v2"]\n`],
  ])("never echo the value of %s", (_name, text) => {
    const result = loadCacheSpecFromText(`${text}${text.includes("ContentCache") ? "" : CACHE_HEAD + NODE + URL_LINE}`, "caches.yaml", dir);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.length).toBeGreaterThan(0);
    for (const issue of result.issues) {
      expect(formatIssue(issue)).not.toMatch(/Sup3rS3cretValue|8675309123/);
    }
  });
});

describe("loading valid specs", () => {
  it("loads the runbook example with absolute paths, defaults and DTR upstream", async () => {
    const result = await loadCacheSpec(path.join(examples, "runbook.yaml"));
    expect(result.ok ? [] : result.issues.map(formatIssue)).toEqual([]);
    if (!result.ok) return;
    const [asia] = result.spec.caches;
    expect(asia?.name).toBe("region-asia");
    expect(asia?.dtr.name).toBe("dtr");
    expect(asia?.upstreamUrls).toEqual(["https://dtr.example.com:443"]);
    expect(asia?.spec.tls).toEqual({ certFile: path.join(examples, "certs/cache.cert.pem"), keyFile: path.join(examples, "certs/cache.key.pem") });
    expect(asia?.dtr.spec.trust.caFile).toBe(path.join(examples, "certs/dtr.cert.pem"));
    expect(asia?.source).toMatchObject({ file: path.join(examples, "runbook.yaml"), documentIndex: 1 });
  });

  it("resolves a chained upstream to the other cache's externalURL and an omitted dtr to the only DTR", async () => {
    const result = await loadCacheSpec(path.join(examples, "chained.yaml"));
    expect(result.ok ? [] : result.issues.map(formatIssue)).toEqual([]);
    if (!result.ok) return;
    const byName = new Map(result.spec.caches.map((c) => [c.name, c]));
    expect(byName.get("region-eu")?.upstreamUrls).toEqual(["https://dtr.example.com"]);
    expect(byName.get("region-eu-office")?.upstreamUrls).toEqual(["https://cache-eu.example.com:5443"]);
    expect(byName.get("region-eu-office")?.spec.dtr).toBe("dtr");
    expect(byName.get("region-eu")?.spec.storage).toEqual({ path: "/var/lib/registry", volume: "region-eu-blobs" });
  });

  it("accepts an empty file and a file of comments as a spec with no caches", () => {
    for (const text of ["", "# nothing yet\n", "---\n---\n"]) {
      const result = loadCacheSpecFromText(text, "empty.yaml", dir);
      expect(result).toEqual({ ok: true, spec: { dtrs: [], caches: [], files: ["empty.yaml"] } });
    }
  });

  it("loads every document of a multi-document file", () => {
    const text = plus(valid, "eu", "  node: {hostname: node-2}\n  nodeLabel: dtr.cache.eu=true\n  externalURL: https://eu.example.com\n");
    const result = loadCacheSpecFromText(text, "caches.yaml", dir);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.spec.caches.map((c) => [c.name, c.source.documentIndex, c.source.line])).toEqual([
      ["asia", 1, 11],
      ["eu", 2, 19],
    ]);
  });

  it("does not mistake labels such as bypass or keyFile-like names for inline secrets", () => {
    const text = valid.replace("  name: asia\n", '  name: asia\n  labels: {bypass: "yes", keyFileOwner: ops}\n');
    const result = loadCacheSpecFromText(text, "caches.yaml", dir);
    expect(result.ok ? [] : result.issues.map(formatIssue)).toEqual([]);
  });

  it("reads a bare integer duration as nanoseconds text and keeps a unit duration as written", () => {
    const result = loadCacheSpecFromText(cache(NODE + URL_LINE + "  blobTTL: 3600000000000\n"), "caches.yaml", dir);
    expect(result.ok && result.spec.caches[0]?.spec.blobTTL).toBe("3600000000000");
  });
});

describe("loadCacheSpec on a directory", () => {
  it("loads *.yaml and *.yml in name order, resolves references across files, and ignores other files", async () => {
    const specDir = path.join(dir, "spec-dir");
    mkdirSync(specDir);
    writeFileSync(path.join(specDir, "10-dtr.yaml"), DTR.replace("---\n", ""));
    writeFileSync(
      path.join(specDir, "20-eu.yml"),
      `${CACHE_HEAD.replace("asia", "eu")}  node: {hostname: node-2}\n  nodeLabel: dtr.cache.eu=true\n  externalURL: https://eu.example.com\n`,
    );
    writeFileSync(
      path.join(dir, "office.source"),
      `${CACHE_HEAD.replace("asia", "office")}${NODE}${URL_LINE}  upstreams: [{cache: eu}]\n  tls: {certFile: ../certs/cache.cert.pem, keyFile: ../certs/cache.key.pem}\n`,
    );
    writeFileSync(path.join(specDir, "README.md"), "not: [a spec");
    // A mounted config is often a link to the real file.
    symlinkSync(path.join(dir, "office.source"), path.join(specDir, "30-office.yaml"));
    writeFileSync(path.join(specDir, ".40-swap.yaml"), "not: [a spec");
    mkdirSync(path.join(specDir, "50-subdir.yaml"));
    const result = await loadCacheSpec(specDir);
    expect(result.ok ? [] : result.issues.map(formatIssue)).toEqual([]);
    if (!result.ok) return;
    expect(result.spec.files.map((f) => path.basename(f))).toEqual(["10-dtr.yaml", "20-eu.yml", "30-office.yaml"]);
    const office = result.spec.caches.find((c) => c.name === "office");
    expect(office?.upstreamUrls).toEqual(["https://eu.example.com"]);
    expect(office?.spec.tls).toMatchObject({ certFile: path.join(dir, "certs", "cache.cert.pem") });
  });

  it("names the file and line of a mistake in a directory", async () => {
    const specDir = path.join(dir, "bad-dir");
    mkdirSync(specDir);
    writeFileSync(path.join(specDir, "a.yaml"), DTR);
    writeFileSync(path.join(specDir, "b.yaml"), `${CACHE_HEAD}${NODE}${URL_LINE}  blobTTL: 24 hours\n`);
    const result = await loadCacheSpec(specDir);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.map((i) => [path.basename(i.file), i.line, i.column, i.code])).toEqual([["b.yaml", 8, 12, "INVALID_FIELD"]]);
    expect(formatIssue(result.issues[0] ?? { code: "", file: "", path: "", message: "" })).toMatch(/b\.yaml:8:12 spec\.blobTTL: "24 hours" is not a duration/);
  });

  it("reports a spec path that does not exist instead of throwing", async () => {
    const result = await loadCacheSpec(path.join(dir, "no-such-spec.yaml"));
    expect(result).toMatchObject({ ok: false, issues: [{ code: "FILE_NOT_FOUND", path: "" }] });
  });

  it("leaves the example certificate files as they were", () => {
    expect(readFileSync(path.join(dir, "certs", "cache.cert.pem"), "utf8")).toBe(readFileSync(path.join(examples, "certs", "cache.cert.pem"), "utf8"));
  });
});

describe("robustness", () => {
  it("answers every truncated or line-deleted variant of the examples with issues or a spec, never an exception", () => {
    let checked = 0;
    for (const file of ["runbook.yaml", "chained.yaml"]) {
      const text = readFileSync(path.join(examples, file), "utf8");
      const lines = text.split("\n");
      const variants = [
        ...lines.map((_, i) => lines.filter((__, j) => j !== i).join("\n")),
        ...lines.map((_, i) => lines.slice(0, i).join("\n")),
        ...lines.map((line, i) => [...lines.slice(0, i), line.replace(/^ {2}/, ""), ...lines.slice(i + 1)].join("\n")),
      ];
      for (const variant of variants) {
        const result = loadCacheSpecFromText(variant, file, examples);
        checked += 1;
        if (result.ok) continue;
        expect(result.issues.length).toBeGreaterThan(0);
        for (const issue of result.issues) {
          expect(issue.line, formatIssue(issue)).toBeGreaterThan(0);
          expect(formatIssue(issue)).not.toContain("\n");
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
  });
});
