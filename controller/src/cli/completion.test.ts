// The bash and zsh completion scripts (deploy/completion/) are static files: commander cannot
// generate them. This test keeps them honest: every verb of the program, and every long flag of
// every verb, appears in both.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildProgram } from "./main.js";

const dir = new URL("../../../deploy/completion/", import.meta.url).pathname;
const bash = readFileSync(`${dir}dtrcache.bash`, "utf8");
const zsh = readFileSync(`${dir}_dtrcache`, "utf8");
const program = buildProgram();

describe("completion scripts", () => {
  it("list every verb", () => {
    const bashVerbs = (/local verbs="([^"]*)"/.exec(bash)?.[1] ?? "").split(" ");
    const zshVerbs = [...zsh.matchAll(/^\s+'([a-z-]+):/gm)].map((m) => m[1]);
    expect(program.commands.length).toBeGreaterThan(10);
    for (const command of program.commands) {
      expect(bashVerbs, `bash: ${command.name()}`).toContain(command.name());
      expect(zshVerbs, `zsh: ${command.name()}`).toContain(command.name());
    }
  });

  it("list every flag of every verb in that verb's branch", () => {
    for (const command of program.commands) {
      const name = command.name();
      const bashLine = bash.split("\n").find((l) => new RegExp(`^\\s+(?:[a-z|]+\\|)?${name}(?:\\|[a-z|]+)?\\) flags=`).test(l)) ?? "";
      const zshLine = zsh.split("\n").find((l) => new RegExp(`^\\s+(?:[a-z|]+\\|)?${name}(?:\\|[a-z|]+)?\\) _arguments`).test(l)) ?? "";
      for (const option of command.options) {
        if (!option.long) continue;
        expect(bashLine, `bash ${name}: ${option.long}`).toContain(option.long);
        // zsh names shared specs in variables ($file, $id, $kind, $level, $format)
        const shared: Record<string, string> = { "--file": "$file", "--id": "$id", "--kind": "$kind", "--log-level": "$level", "--log-format": "$format" };
        const inZsh = zshLine.includes(option.long) || (shared[option.long] !== undefined && zshLine.includes(shared[option.long] ?? ""));
        expect(inZsh, `zsh ${name}: ${option.long}`).toBe(true);
      }
    }
  });
});
