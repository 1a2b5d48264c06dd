// A client that hashes a response while it arrives (so 50 x 64 MiB never sits in memory) and
// reports how the response ended.
import { createHash } from "node:crypto";
import { request } from "node:http";

export interface HashedResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly bytes: number;
  readonly digest: string;
}

export function getHashed(url: string, headers: Record<string, string> = {}): Promise<HashedResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const h = createHash("sha256");
      let n = 0;
      res.on("data", (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes: n, digest: `sha256:${h.digest("hex")}` }));
      res.on("error", reject);
      res.on("aborted", () => reject(new Error("response aborted")));
    });
    req.on("error", reject);
    req.end();
  });
}
