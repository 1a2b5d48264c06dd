// Entry point of `npm run gen:schema`: writes crds/cachespec.schema.json and
// docs/configuration.md from the zod schemas. json-schema.test.ts fails when they are stale.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { renderConfigurationReference, renderJsonSchemaFile } from "./json-schema.js";

// Runs from crds/dist (built) or crds/src (tests); both sit two levels below the repository root.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const SCHEMA_FILE = path.join(root, "crds", "cachespec.schema.json");
export const REFERENCE_FILE = path.join(root, "docs", "configuration.md");

writeFileSync(SCHEMA_FILE, renderJsonSchemaFile());
writeFileSync(REFERENCE_FILE, renderConfigurationReference());
console.log(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)} and ${path.relative(process.cwd(), REFERENCE_FILE)}`);
