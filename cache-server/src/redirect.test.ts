import { describe, expect, it } from "vitest";
import { originOf, planRedirect } from "./redirect.js";

const UP = "https://dtr.example:4443";
const BLOB = `/v2/team/app/blobs/sha256:${"a".repeat(64)}`;
const SELF = originOf("https://cache.example:443/");

describe("planRedirect", () => {
  it("re-issues a redirect to the cache's own http.host with the Location's query only", () => {
    const plan = planRedirect(UP, BLOB, `https://CACHE.example${BLOB}?expires=1&user=alice&signature=s`, SELF);
    expect(plan).toEqual({ kind: "self", pathAndQuery: `${BLOB}?expires=1&user=alice&signature=s` });
  });

  it("keeps the requested path when the self Location names another path", () => {
    expect(planRedirect(UP, BLOB, "https://cache.example/elsewhere?sig=1", SELF)).toEqual({ kind: "self", pathAndQuery: `${BLOB}?sig=1` });
  });

  it("treats the same blob path at an origin that is neither ours nor the upstream's as a grant for us", () => {
    expect(planRedirect(UP, BLOB, `http://cache-lb.internal:5000${BLOB}?sig=1`, undefined)).toEqual({ kind: "self", pathAndQuery: `${BLOB}?sig=1` });
  });

  it("follows a relative Location on the upstream's own origin", () => {
    expect(planRedirect(UP, `${BLOB}?old=1`, "/v2/other/blobs/x?sig=2", SELF)).toEqual({ kind: "same-origin", pathAndQuery: "/v2/other/blobs/x?sig=2" });
  });

  it("follows another origin as a foreign hop, without the fragment", () => {
    expect(planRedirect(UP, BLOB, "https://objects.example/bucket/data?X-Sig=3#frag", SELF)).toEqual({
      kind: "foreign",
      url: "https://objects.example/bucket/data?X-Sig=3",
      origin: "https://objects.example",
    });
  });

  it("refuses a missing Location, a non-http scheme and user info, naming no URL", () => {
    expect(planRedirect(UP, BLOB, undefined, SELF)).toEqual({ kind: "invalid", reason: "redirect without a Location" });
    expect(planRedirect(UP, BLOB, "file:///etc/passwd", SELF)).toMatchObject({ kind: "invalid" });
    const withUser = planRedirect(UP, BLOB, "https://u:secret@objects.example/x", SELF);
    expect(withUser).toMatchObject({ kind: "invalid" });
    expect(JSON.stringify(withUser)).not.toContain("secret");
  });

  it("normalizes http.host: default ports, case, trailing slash; no origin for a non-URL", () => {
    expect(originOf("HTTPS://Cache.Example:443/")).toBe("https://cache.example");
    expect(originOf("cache.example:5000")).toBeUndefined();
    expect(originOf(undefined)).toBeUndefined();
  });
});
