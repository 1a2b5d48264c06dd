// What is never cached: the login probe (GET /v2/) and tag lists. Both go upstream with the
// client's credentials so challenges and listings come back as the upstream gave them.
import { UpstreamError } from "./errors.js";
import type { Outcome, RequestInfo } from "./outcome.js";
import type { UpstreamResponse } from "./upstream.js";
import { headerValue, MAX_MANIFEST, pickHeaders, readBody, type UpstreamAccess } from "./upstream-access.js";

export class PassthroughService {
  constructor(private readonly access: UpstreamAccess) {}

  /** GET /v2/: the client's login probe; challenges come back unchanged. */
  async base(req: RequestInfo): Promise<Outcome> {
    let up: UpstreamResponse;
    try {
      up = await this.access.request(req, "GET", "/v2/");
    } catch {
      // No upstream: cached content may still be served, so the API itself is "up".
      return { kind: "json", status: 200, body: "{}" };
    }
    const body = await readBody(up, 64 * 1024);
    if (up.status === 200) return { kind: "json", status: 200, body: "{}" };
    return { kind: "relay", status: up.status, headers: pickHeaders(up.headers), body };
  }

  /** Tag listing: not cached (it changes with every push). */
  async tagList(req: RequestInfo, name: string): Promise<Outcome> {
    let up: UpstreamResponse;
    try {
      up = await this.access.request(req, "GET", `/v2/${name}/tags/list`, { accept: "application/json" });
    } catch (err) {
      if (err instanceof UpstreamError) return { kind: "error", code: "UPSTREAM_UNAVAILABLE" };
      throw err;
    }
    const body = await readBody(up, MAX_MANIFEST);
    const headers = pickHeaders(up.headers);
    const link = headerValue(up.headers.link);
    if (link) headers.link = link;
    return { kind: "relay", status: up.status, headers, body, notFound: "NAME_UNKNOWN" };
  }
}
