// Runs a guide's blocks as an operator pasting them into one terminal would: each block with bash,
// in the operator's working directory, seeing the variables earlier blocks exported (the state is
// carried in a file: `export -p` after a block that succeeded, sourced before the next one).
// Each block runs with `set -euo pipefail`, so a failing command inside a block fails the step
// instead of being hidden by a later one, and a variable the documented environment lacks is an
// error rather than an empty string.
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../../harness/proc.js";
import type { DocBlock } from "./blocks.js";

export interface BlockRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

export interface DocShell {
  /** Runs one block; `set` exports extra variables first (what the guide's prose tells the reader to set). */
  run(block: DocBlock, options?: { timeoutMs?: number; set?: Readonly<Record<string, string>> }): Promise<BlockRun>;
}

const quote = (value: string): string => `'${value.replace(/'/g, "'\\''")}'`;

/**
 * `env` is the terminal's environment (nothing else is inherited); `cwd` the operator's working
 * directory; `scratch` a directory for the scripts and the carried state.
 */
export function docShell(options: { env: Readonly<Record<string, string>>; cwd: string; scratch: string; source: string }): DocShell {
  const state = join(options.scratch, "exported.sh");
  let started = false;
  return {
    async run(block, runOptions = {}) {
      const file = join(options.scratch, `${block.step}.sh`);
      const set = Object.entries(runOptions.set ?? {})
        .map(([k, v]) => `export ${k}=${quote(v)}\n`)
        .join("");
      await writeFile(
        file,
        [
          started ? `. ${quote(state)}\n` : "",
          set,
          "set -euo pipefail\n",
          `cd ${quote(options.cwd)}\n`,
          `# ${options.source}:${block.line}, step ${block.step}\n`,
          block.script,
          `export -p > ${quote(`${state}.next`)}\n`,
        ].join(""),
      );
      const t0 = Date.now();
      const result = await run("bash", [file], { env: { ...options.env }, timeoutMs: runOptions.timeoutMs ?? 120_000, allowFailure: true });
      if (result.code === 0) {
        await rename(`${state}.next`, state);
        started = true;
      }
      return { code: result.code, stdout: result.stdout, stderr: result.stderr, seconds: (Date.now() - t0) / 1000 };
    },
  };
}
