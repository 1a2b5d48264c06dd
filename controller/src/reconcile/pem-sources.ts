// Where PEM material named by the spec comes from (issue 11, item 3): a file (process mode), a
// Swarm config (readable through the Engine API), or a Swarm secret (never readable through the
// API: it can only be mounted). One place decides, so materials, the TLS monitor and the DTR
// trust agree on what can be read and what can only be mounted.
import { readFile } from "node:fs/promises";
import type { PemSource } from "@dtrcache/crds";
import type { SwarmApi } from "../swarm/api.js";
import { ControllerError } from "../errors.js";

/** An existing Swarm object mounted into a cache's service as is (not created or owned by us). */
export interface ExternalMount {
  readonly kind: "secret" | "config";
  readonly name: string;
  readonly id: string;
  /** Path inside the container. */
  readonly target: string;
}

export type PemRead =
  | { readonly readable: true; readonly pem: string }
  /** A Swarm secret: its content is not available to the controller; it can only be mounted. */
  | { readonly readable: false; readonly secret: string };

export function describeSource(source: PemSource): string {
  return typeof source === "string" ? source : "secret" in source ? `Swarm secret ${source.secret}` : `Swarm config ${source.config}`;
}

/**
 * Reads files and configs, finds secrets by name. Config contents are kept by id (configs are
 * immutable), so a pass that changed nothing inspects nothing.
 */
export class PemSources {
  private readonly configs = new Map<string, string>();

  constructor(
    /** Without an engine (a TLS check in a test, `validate`), only files can be read. */
    private readonly swarm: SwarmApi | undefined,
    private readonly readText: (path: string) => Promise<string> = (path) => readFile(path, "utf8"),
  ) {}

  /** The PEM of a file or config; a secret is reported as unreadable (not an error). */
  async read(source: PemSource, field: string): Promise<PemRead> {
    if (typeof source === "string") {
      try {
        return { readable: true, pem: await this.readText(source) };
      } catch (error) {
        throw new ControllerError("MATERIAL_UNREADABLE", `${field}: cannot read ${source} (${(error as NodeJS.ErrnoException).code ?? "error"})`, {
          cause: error,
        });
      }
    }
    if ("secret" in source) return { readable: false, secret: source.secret };
    const id = await this.idOf("config", source.config, field);
    const known = this.configs.get(id);
    if (known !== undefined) return { readable: true, pem: known };
    const pem = (await this.swarm?.inspectConfig(id))?.data?.toString("utf8") ?? "";
    this.configs.set(id, pem);
    return { readable: true, pem };
  }

  /** The id of an existing secret or config by name; missing → MATERIAL_UNREADABLE (retried: it may be created). */
  async idOf(kind: "secret" | "config", name: string, field: string): Promise<string> {
    if (!this.swarm) throw new ControllerError("MATERIAL_UNREADABLE", `${field}: Swarm ${kind} "${name}" cannot be looked up without an engine`);
    const list = kind === "secret" ? await this.swarm.listSecrets({ labels: [] }) : await this.swarm.listConfigs({ labels: [] });
    const found = list.find((o) => o.name === name);
    if (!found)
      throw new ControllerError(
        "MATERIAL_UNREADABLE",
        `${field}: Swarm ${kind} "${name}" does not exist (create it with \`docker ${kind} create ${name} FILE\`)`,
      );
    return found.id;
  }

  /** A mount of the referenced object itself at `target`. */
  async mount(source: Exclude<PemSource, string>, target: string, field: string): Promise<ExternalMount> {
    const kind = "secret" in source ? "secret" : "config";
    const name = "secret" in source ? source.secret : source.config;
    return { kind, name, id: await this.idOf(kind, name, field), target };
  }
}
