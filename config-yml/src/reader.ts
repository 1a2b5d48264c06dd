// Typed access to a parsed YAML document for the config reader: each getter reads one key, records
// a problem with the field's path and the node's line:col when the value is wrong, and returns
// undefined then. Every message is masked here, once, so no error or warning can echo a URL's
// credentials, whichever check produced it.
import { isMap, isScalar, isSeq, type LineCounter, type Node as YamlNode, type YAMLMap } from "yaml";
import { maskCredentials } from "./mask.js";
import type { ConfigProblem } from "./model.js";
import type { Checked } from "./rules.js";

export type { YamlNode, YAMLMap };

export class Reader {
  readonly errors: ConfigProblem[] = [];
  readonly warnings: ConfigProblem[] = [];
  constructor(private readonly lines: LineCounter) {}

  private at(node: YamlNode | null | undefined): { line?: number; col?: number } {
    const offset = node?.range?.[0];
    if (offset === undefined) return {};
    const pos = this.lines.linePos(offset);
    return { line: pos.line, col: pos.col };
  }

  error(path: string, message: string, node?: YamlNode | null): void {
    this.errors.push({ path, message: maskCredentials(message), ...this.at(node) });
  }

  warn(path: string, message: string, node?: YamlNode | null): void {
    this.warnings.push({ path, message: maskCredentials(message), ...this.at(node) });
  }

  hasError(pathPrefix: string): boolean {
    return this.errors.some((e) => e.path.startsWith(pathPrefix));
  }

  /** Returns the map at `key` (or undefined when absent), warning about keys not in `known`. */
  map(parent: YAMLMap | undefined, key: string, path: string, known: readonly string[], ignored: ReadonlySet<string> = new Set()): YAMLMap | undefined {
    const node = parent?.get(key, true) as YamlNode | undefined;
    if (node === undefined || (isScalar(node) && node.value === null)) return undefined;
    if (!isMap(node)) {
      this.error(path, "must be a mapping", node);
      return undefined;
    }
    this.checkKeys(node, path, known, ignored);
    return node;
  }

  checkKeys(node: YAMLMap, path: string, known: readonly string[], ignored: ReadonlySet<string> = new Set()): void {
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (known.includes(k)) continue;
      const where = `${path ? `${path}.` : ""}${k}`;
      this.warn(where, ignored.has(k) ? "ignored by the cache" : "unknown key (ignored)", pair.key as YamlNode);
    }
  }

  scalar(parent: YAMLMap | undefined, key: string): { value: unknown; node: YamlNode } | undefined {
    const node = parent?.get(key, true) as YamlNode | undefined;
    if (node === undefined) return undefined;
    if (!isScalar(node)) return { value: node, node };
    if (node.value === null) return undefined;
    return { value: node.value, node };
  }

  node(parent: YAMLMap | undefined, key: string): YamlNode | undefined {
    return parent?.get(key, true) as YamlNode | undefined;
  }

  string(parent: YAMLMap | undefined, key: string, path: string): string | undefined {
    const s = this.scalar(parent, key);
    if (!s) return undefined;
    if (typeof s.value !== "string" || s.value.trim() === "") {
      this.error(path, "must be a non-empty string", s.node);
      return undefined;
    }
    return s.value;
  }

  boolean(parent: YAMLMap | undefined, key: string, path: string): boolean | undefined {
    const s = this.scalar(parent, key);
    if (!s) return undefined;
    if (typeof s.value !== "boolean") {
      this.error(path, "must be true or false", s.node);
      return undefined;
    }
    return s.value;
  }

  /** A value under one of the contract's rules (rules.ts); the refused value is echoed, masked. */
  checked<T>(parent: YAMLMap | undefined, key: string, path: string, check: (value: unknown) => Checked<T>): T | undefined {
    const s = this.scalar(parent, key);
    if (!s) return undefined;
    const result = check(s.value);
    if (result.ok) return result.value;
    const echo = isScalar(s.node) ? `${JSON.stringify(s.value)} ` : "";
    this.error(path, `${echo}${result.message}`, s.node);
    return undefined;
  }

  number(parent: YAMLMap | undefined, key: string, path: string, min: number, max: number, integer: boolean): number | undefined {
    const s = this.scalar(parent, key);
    if (!s) return undefined;
    if (typeof s.value !== "number" || !Number.isFinite(s.value) || s.value < min || s.value > max || (integer && !Number.isInteger(s.value))) {
      this.error(path, `must be ${integer ? "an integer" : "a number"} between ${min} and ${max}`, s.node);
      return undefined;
    }
    return s.value;
  }

  stringList(parent: YAMLMap | undefined, key: string, path: string): { value: string; node: YamlNode }[] {
    const node = parent?.get(key, true) as YamlNode | undefined;
    if (node === undefined || (isScalar(node) && node.value === null)) return [];
    if (!isSeq(node)) {
      this.error(path, "must be a list of strings", node);
      return [];
    }
    const out: { value: string; node: YamlNode }[] = [];
    node.items.forEach((item, i) => {
      if (isScalar(item) && typeof item.value === "string" && item.value.trim() !== "") out.push({ value: item.value, node: item });
      else this.error(`${path}[${i}]`, "must be a non-empty string", item as YamlNode);
    });
    return out;
  }
}
