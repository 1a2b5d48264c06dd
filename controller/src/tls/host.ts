/** The host a URL names, as certificates name it: IPv6 literals without their brackets. */
export function hostOf(url: string | URL): string {
  return (typeof url === "string" ? new URL(url) : url).hostname.replace(/^\[|\]$/g, "");
}
