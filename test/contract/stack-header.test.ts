// The controller stack file's header shows how to install it; the operations guide's blocks are
// what is executed (docs-operations.test.ts). The header's commands must be the guide's, so the
// file a reader opens first cannot teach an older way. It taught `openssl rand -hex 32 | docker
// secret create dtrcache-status-token -`, which keeps no copy of the token `dtrcache status`
// must send: this test failed on that header.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { markedBlocks } from "../support/docs/blocks.js";
import { OPERATIONS_GUIDE } from "../support/docs/operations-steps.js";

const root = new URL("../../", import.meta.url).pathname;
const normalize = (command: string): string =>
  command
    .replace(/\s+#\s.*$/, "")
    .replace(/\s+/g, " ")
    .trim();

function headerCommands(): string[] {
  const stack = readFileSync(`${root}deploy/stack/controller.stack.yml`, "utf8").split("\n");
  const header = stack.slice(
    0,
    stack.findIndex((l) => !l.startsWith("#")),
  );
  // the first run of indented lines of the header comment is the install, command by command
  const first = header.findIndex((l) => l.startsWith("#   "));
  const end = header.findIndex((l, i) => i > first && !l.startsWith("#   "));
  return header.slice(first, end).map((l) => normalize(l.slice(1)));
}

function guideCommands(): Set<string> {
  const blocks = markedBlocks(readFileSync(`${root}${OPERATIONS_GUIDE}`, "utf8"), OPERATIONS_GUIDE);
  return new Set(blocks.flatMap((b) => b.script.split("\n").map(normalize)).filter((l) => l !== ""));
}

describe("deploy/stack/controller.stack.yml header", () => {
  it("shows only commands the executed operations guide runs (docker stack deploy's file path aside)", () => {
    const guide = guideCommands();
    const commands = headerCommands();
    expect(commands.length).toBeGreaterThan(3);
    for (const command of commands) {
      const asInGuide = command.replace("-c controller.stack.yml", '-c "$DTRCACHE_SRC/deploy/stack/controller.stack.yml"');
      expect(guide.has(asInGuide), `header command not in ${OPERATIONS_GUIDE}: ${command}`).toBe(true);
    }
  });

  it("keeps the status token in a file the CLI reads back", () => {
    const commands = headerCommands();
    expect(commands.some((c) => /openssl rand .*\|\s*docker secret create/.test(c))).toBe(false);
    expect(commands).toContain("docker secret create dtrcache-status-token status-token");
  });
});
