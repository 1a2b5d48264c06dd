import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { ISSUE_CODES } from "./issues.js";
import { cacheSpecJsonSchema, renderConfigurationReference, renderJsonSchemaFile, type JsonSchema } from "./json-schema.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** Key paths of a YAML value, list items as []: spec.upstreams[].cache */
function keyPaths(value: unknown, prefix = ""): string[] {
  if (Array.isArray(value)) return value.flatMap((item) => keyPaths(item, `${prefix}[]`));
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([key, child]) => {
    const here = prefix === "" ? key : `${prefix}.${key}`;
    return [here, ...keyPaths(child, here)];
  });
}

/** Does the schema (any alternative of it) define this key path? */
function schemaHas(schema: JsonSchema, segments: readonly string[]): boolean {
  if (segments.length === 0) return true;
  const [head, ...rest] = segments;
  const alternatives = [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])];
  if (alternatives.some((alt) => schemaHas(alt, segments))) return true;
  if (head === "[]") return schema.items !== undefined && schemaHas(schema.items, rest);
  const child = head === undefined ? undefined : schema.properties?.[head];
  return child !== undefined && schemaHas(child, rest);
}

function splitPath(keyPath: string): string[] {
  return keyPath
    .replace(/\[\]/g, ".[]")
    .split(".")
    .filter((s) => s !== "");
}

describe("generated files", () => {
  it("crds/cachespec.schema.json is what npm run gen:schema writes today", () => {
    expect(readFileSync(path.join(root, "crds", "cachespec.schema.json"), "utf8")).toBe(renderJsonSchemaFile());
  });

  it("docs/configuration.md is what npm run gen:schema writes today", () => {
    expect(readFileSync(path.join(root, "docs", "configuration.md"), "utf8")).toBe(renderConfigurationReference());
  });

  it("documents every field of both kinds with a description", () => {
    const reference = renderConfigurationReference();
    for (const field of [
      "spec.blobTTL",
      "spec.upstreams[].cache",
      "spec.tls.certFile",
      "spec.admin.password.env",
      "spec.trust.fetchCA",
      "spec.node.existingLabel",
    ]) {
      expect(reference).toContain(`| \`${field}\` |`);
    }
    expect(reference).not.toMatch(/\|\s*\|\s*$/m);
  });
});

describe("the examples against the JSON Schema", () => {
  const schema = cacheSpecJsonSchema();
  const kinds = new Map((schema.oneOf ?? []).map((k) => [String(k.properties?.kind?.const), k]));

  it.each(["runbook.yaml", "chained.yaml"])("every key path of %s exists in the schema for its kind", (file) => {
    const docs = parseAllDocuments(readFileSync(path.join(root, "crds", "examples", file), "utf8"));
    if (!Array.isArray(docs)) throw new Error("no documents");
    expect(docs.length).toBeGreaterThanOrEqual(2);
    for (const doc of docs) {
      const value = doc.toJS() as { kind: string };
      const kindSchema = kinds.get(value.kind);
      expect(kindSchema, value.kind).toBeDefined();
      if (!kindSchema) continue;
      const missing = keyPaths(value).filter((p) => !schemaHas(kindSchema, splitPath(p)));
      expect(missing).toEqual([]);
    }
  });

  it("would notice a key path the schema lacks", () => {
    const cacheSchema = kinds.get("ContentCache");
    if (!cacheSchema) throw new Error("no ContentCache schema");
    expect(schemaHas(cacheSchema, splitPath("spec.tls.certFile"))).toBe(true);
    expect(schemaHas(cacheSchema, splitPath("spec.upstreams[].cache"))).toBe(true);
    expect(schemaHas(cacheSchema, splitPath("spec.blobTtl"))).toBe(false);
    expect(schemaHas(cacheSchema, splitPath("spec.upstreams[].url"))).toBe(false);
  });

  it("marks fields with defaults optional and keeps the runbook defaults", () => {
    const spec = kinds.get("ContentCache")?.properties?.spec;
    expect(spec?.required).toEqual(["node", "externalURL"]);
    expect(spec?.properties?.nodeLabel?.default).toBe("dtr.cache=true");
    expect(spec?.properties?.blobTTL?.default).toBe("24h");
    expect(spec?.properties?.port?.default).toBe(443);
  });
});

describe("docs/crds.md", () => {
  it("lists every issue code the loader can report", () => {
    const note = readFileSync(path.join(root, "docs", "crds.md"), "utf8");
    for (const code of Object.keys(ISSUE_CODES)) expect(note).toContain(`| \`${code}\` |`);
  });
});
