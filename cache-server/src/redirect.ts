// Which upstream redirects a blob request follows, and how. Pure: (request, answer) -> plan.
//
// Why it exists: in DTR's content-cache flow a user whose setting names this cache may pull
// straight from the cache with a bearer token. The cache fills with that token, and DTR answers
// the fill with a 307 back to the cache itself (its registered host) carrying a signed query.
// Following that Location literally would loop to ourselves; the signed query is meant for the
// upstream, so the request is re-issued to the same upstream with that query and without the
// Authorization header (the signature is the credential).
//
// The rules, decided here once:
// - "self": Location's origin is this cache's own `http.host` origin, or Location names the very
//   same blob path at an origin that is neither the upstream's nor ours (a grant addressed to
//   this cache under another name, or to a cache further down a chain) -> re-issue to the same
//   upstream, path unchanged, query = Location's query, no Authorization.
// - "same-origin": Location is on the upstream's own origin -> follow, Authorization kept.
// - "foreign": any other http(s) origin (e.g. a registry whose storage redirects to object
//   storage with a pre-signed URL) -> follow, Authorization dropped, as Go's and docker's
//   clients do when the origin changes.
// At most one hop is followed: the caller treats a redirect answer to a followed request as an
// error instead of following it (no loops).

export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

export type RedirectPlan =
  /** Re-issue to the same upstream with this path + query, without Authorization. */
  | { readonly kind: "self"; readonly pathAndQuery: string }
  /** Same upstream origin: follow to this path + query, Authorization kept. */
  | { readonly kind: "same-origin"; readonly pathAndQuery: string }
  /** Another origin: follow to this absolute URL, Authorization dropped. */
  | { readonly kind: "foreign"; readonly url: string; readonly origin: string }
  /** The answer is a redirect that cannot be followed (no Location, bad URL, bad scheme). */
  | { readonly kind: "invalid"; readonly reason: string };

/** Normalized origin of a configured URL (`http.host`), or undefined when it is not a URL. */
export function originOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") return undefined;
    return u.origin;
  } catch {
    return undefined;
  }
}

/**
 * Plans the one hop for a redirect answer. `upstreamUrl` is the upstream's base URL, `pathAndQuery`
 * the request as sent; `selfOrigin` the cache's own http.host origin (undefined when unset).
 * Never puts the Location (which may hold a signature) in `reason`.
 */
export function planRedirect(upstreamUrl: string, pathAndQuery: string, location: string | undefined, selfOrigin: string | undefined): RedirectPlan {
  if (location === undefined || location.trim() === "") return { kind: "invalid", reason: "redirect without a Location" };
  const requested = new URL(pathAndQuery, upstreamUrl);
  let target: URL;
  try {
    // A relative Location is resolved against the request, as HTTP clients do.
    target = new URL(location.trim(), requested);
  } catch {
    return { kind: "invalid", reason: "redirect Location is not a URL" };
  }
  if (target.protocol !== "http:" && target.protocol !== "https:") return { kind: "invalid", reason: `redirect to an unsupported scheme ${target.protocol}` };
  if (target.username || target.password) return { kind: "invalid", reason: "redirect Location carries user info" };
  const upstreamOrigin = requested.origin;
  const samePath = target.pathname === requested.pathname;
  if (target.origin === selfOrigin || (samePath && target.origin !== upstreamOrigin)) {
    return { kind: "self", pathAndQuery: `${requested.pathname}${target.search}` };
  }
  if (target.origin === upstreamOrigin) return { kind: "same-origin", pathAndQuery: `${target.pathname}${target.search}` };
  return { kind: "foreign", url: target.href.replace(/#.*$/, ""), origin: target.origin };
}
