// docs/operations.md is executed by test/integration/docs-operations.test.ts; this checks, without
// an engine, that every step that test runs is still a marked `sh` block of the guide, in order,
// and that the marker parser refuses what would make a block drop out of the run unnoticed.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { markedBlocks, requireSteps, variablesSet } from "../support/docs/blocks.js";
import { OPERATIONS_GUIDE, OPERATIONS_STEPS } from "../support/docs/operations-steps.js";

const root = new URL("../../", import.meta.url).pathname;

describe("the executed blocks of docs/operations.md", () => {
  it("has every step the docs test runs as a marked sh block, in the guide's order", () => {
    const blocks = requireSteps(markedBlocks(readFileSync(`${root}${OPERATIONS_GUIDE}`, "utf8"), OPERATIONS_GUIDE), OPERATIONS_STEPS, OPERATIONS_GUIDE);
    expect(blocks.map((b) => b.step)).toEqual([...OPERATIONS_STEPS]);
    for (const b of blocks) expect(b.script.trim(), b.step).not.toBe("");
  });

  it("takes a marked block verbatim, leaves out blocks skipped with a reason and other fences", () => {
    const md = [
      "intro",
      "<!-- docs-test: skip (writes to /etc) -->",
      "```sh",
      "echo not run",
      "```",
      "",
      "<!-- docs-test: one (a note) -->",
      "",
      "```sh",
      "a  'quoted'",
      "  b",
      "```",
      "```text",
      "x",
      "```",
      "<!-- docs-test: skip (again) -->",
      "```sh",
      "y",
      "```",
    ].join("\n");
    expect(markedBlocks(md)).toEqual([{ step: "one", line: 10, script: "a  'quoted'\n  b\n" }]);
  });

  it("refuses an unmarked sh block and a skip without a reason", () => {
    expect(() => markedBlocks("text\n```sh\nrm -rf x\n```\n")).toThrow(/markdown:2: a sh block without a docs-test marker/);
    expect(() => markedBlocks("<!-- docs-test: skip -->\n```sh\nx\n```\n")).toThrow(/a skipped block must say why/);
  });

  it("refuses a marker without a sh block, a repeated step, a malformed marker and an unclosed block", () => {
    expect(() => markedBlocks("<!-- docs-test: a -->\n```text\nx\n```\n")).toThrow(/step "a" is not followed by a ```sh block/);
    expect(() => markedBlocks("<!-- docs-test: a -->\n```sh\nx\n```\n<!-- docs-test: a -->\n```sh\ny\n```\n")).toThrow(/marked twice/);
    expect(() => markedBlocks("<!-- docs-test A -->\n```sh\nx\n```\n")).toThrow(/malformed docs-test marker/);
    expect(() => markedBlocks("<!-- docs-test: a -->\n```sh\nx\n")).toThrow(/never closed/);
  });

  it("fails when a step is missing, unknown or out of order", () => {
    const blocks = markedBlocks("<!-- docs-test: b -->\n```sh\nx\n```\n<!-- docs-test: a -->\n```sh\ny\n```\n");
    expect(() => requireSteps(blocks, ["a", "b", "c"])).toThrow(/missing marked block\(s\): c/);
    expect(() => requireSteps(blocks, ["a"])).toThrow(/marked block\(s\) the test does not run: b/);
    expect(() => requireSteps(blocks, ["a", "b"])).toThrow(/steps out of order: the guide has b, a/);
  });

  it("names the variables a block exports or reads", () => {
    expect(variablesSet("export A=1  # x\nread -rs B\nC=3\n  export D_2=$A\n")).toEqual(["A", "B", "D_2"]);
  });
});
