import { describe, expect, it } from "vitest";
import { isValidName, parseRegistryPath } from "./names.js";

const D = `sha256:${"ab".repeat(32)}`;

describe("registry path parsing", () => {
  it("routes blobs, manifests by tag and by digest", () => {
    expect(parseRegistryPath(`/v2/library/alpine/blobs/${D}`)).toEqual({ kind: "blob", name: "library/alpine", digest: D });
    expect(parseRegistryPath("/v2/a/b/c/manifests/v1.2_x-y")).toEqual({ kind: "manifest", name: "a/b/c", reference: "v1.2_x-y", byDigest: false });
    expect(parseRegistryPath(`/v2/app/manifests/${D}`)).toEqual({ kind: "manifest", name: "app", reference: D, byDigest: true });
    expect(parseRegistryPath("/v2/")).toEqual({ kind: "base" });
  });

  it.each(["..", "a/../b", "a//b", "/abs", "A", "a-", "-a", "a..b", "%2e%2e", "a/.", "a/b/"])("rejects the name %j", (name) => {
    expect(isValidName(name)).toBe(false);
  });

  it("accepts the separators of the reference grammar", () => {
    for (const n of ["a", "a.b", "a_b", "a__b", "a---b", "x/y.z/w_1"]) expect(isValidName(n)).toBe(true);
  });

  it("rejects non-sha256 and malformed digests", () => {
    for (const d of ["sha256:abc", `sha256:${"AB".repeat(32)}`, `sha512:${"a".repeat(128)}`, `sha256:${"a".repeat(63)}/`]) {
      const r = parseRegistryPath(`/v2/app/blobs/${d}`);
      expect(r.kind).toBe("invalid");
    }
  });

  it("marks uploads as unsupported", () => {
    expect(parseRegistryPath("/v2/app/blobs/uploads/").kind).toBe("unsupported");
  });
});
