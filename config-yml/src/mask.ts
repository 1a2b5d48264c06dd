// Credentials that may ride along in a URL (user:password@, a signed or token query) must never
// reach stderr or the log, not even when the URL is being rejected for carrying them. This one
// function is applied to every configuration message, so an echoed value and any text the YAML
// parser quotes back are both covered.

// scheme://userinfo@ — greedy up to the LAST "@" of the token, because a password may itself hold
// an unescaped "@" (https://u:p@ss@host); stops at whitespace and quotes (the end of an echoed value).
const USERINFO = /([a-z][a-z0-9+.-]*:\/\/)([^\s"'`]*)@/gi;
// scheme://host...?query — a query may carry a token or a signature.
const QUERY = /([a-z][a-z0-9+.-]*:\/\/[^\s"'`?#]*)\?[^\s"'`#]*/gi;

/**
 * Masks URL credentials inside free text: `https://user:PW@host` → `https://user:***@host`, a
 * user part alone (often a token) → `***@`, a query → `?***`. Over-masks rather than under-masks: an
 * "@" in a path also hides what precedes it.
 */
export function maskCredentials(text: string): string {
  return text
    .replace(USERINFO, (_m, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(":");
      const user = colon >= 0 ? userinfo.slice(0, colon) : "";
      // A user part is shown only when it is plainly a name; anything odd is hidden whole.
      const shown = colon > 0 && /^[A-Za-z0-9._-]+$/.test(user) ? `${user}:***` : "***";
      return `${scheme}${shown}@`;
    })
    .replace(QUERY, (_m, before: string) => `${before}?***`);
}
