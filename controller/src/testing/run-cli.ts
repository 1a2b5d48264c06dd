// Runs the dtrcache CLI in this process, as `dtrcache ARGS...` would, and returns its exit code
// with everything it wrote to stdout and stderr (the CLI writes through process.stdout/stderr).
import { vi } from "vitest";
import { main } from "../cli/main.js";

export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export async function runCli(...args: string[]): Promise<CliRun> {
  let out = "";
  let err = "";
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => ((out += String(chunk)), true));
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => ((err += String(chunk)), true));
  try {
    const code = await main(["node", "dtrcache", ...args]);
    return { code, out, err };
  } finally {
    vi.restoreAllMocks();
  }
}
