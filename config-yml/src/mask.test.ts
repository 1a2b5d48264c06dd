// Secrets never in the reader's messages: every error and warning goes through maskCredentials,
// whichever rule produced it, and the YAML parser's own messages too.
import { describe, expect, it } from "vitest";
import { maskCredentials } from "./mask.js";
import { parseConfig } from "./parse.js";

const PW = "Sup3rSecretPW";

function configWith(upstreams: string, extra = ""): string {
  return `version: 0.1
http:
  addr: 127.0.0.1:0
  secret: ${PW}-http-secret
middleware:
  registry:
    - name: downstream
      options:
        blobttl: 24h
        upstreams: ${upstreams}
${extra}`;
}

describe("masking in the reader's messages", () => {
  it.each([
    ["user:password in an upstream", `[https://user:${PW}@dtr.example.com]`, "https://user:***@dtr.example.com"],
    ["a token as the user part", `[https://${PW}@dtr.example.com]`, "https://***@dtr.example.com"],
    ["a token in the query", `[https://dtr.example.com?token=${PW}]`, "https://dtr.example.com?***"],
    ["credentials in a 2.3-era originhost", `[{originhost: "https://user:${PW}@dtr.example.com"}]`, "https://user:***@dtr.example.com"],
  ])("refuses %s, naming the field and line, without the secret", (_name, upstreams, shown) => {
    const r = parseConfig(configWith(upstreams));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors[0]?.path).toMatch(/^middleware\.registry\[0\]\.options\.upstreams\[0\]/);
    expect(r.errors[0]?.line).toBe(10);
    expect(JSON.stringify(r)).not.toContain(PW);
    expect(r.errors[0]?.message).toContain(shown);
  });

  it("masks a URL the YAML parser quotes back from a broken line", () => {
    const r = parseConfig(configWith(`[https://user:${PW}@dtr.example.com]]`));
    expect(r.ok).toBe(false);
    expect(JSON.stringify(r)).not.toContain(PW);
  });

  it("never echoes http.secret, even when it is the wrong type", () => {
    const r = parseConfig(configWith("[https://dtr.example.com]").replace(`secret: ${PW}-http-secret`, `secret: [${PW}]`));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map((e) => e.path)).toEqual(["http.secret"]);
    expect(JSON.stringify(r)).not.toContain(PW);
  });

  it("leaves URLs without credentials as they are", () => {
    expect(maskCredentials('got "https://u:p@h:5000" and http://h2/x')).toBe('got "https://u:***@h:5000" and http://h2/x');
    expect(maskCredentials("https://dtr.example.com:443")).toBe("https://dtr.example.com:443");
  });
});
