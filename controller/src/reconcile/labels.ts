// Ownership labels. Every object the controller creates carries OWNER (=controller id) and CACHE;
// configs and secrets also carry PURPOSE and HASH. Nothing without our OWNER label is ever
// changed or removed. Node labels are the one thing we set on objects we do not own: a marker
// label records that *we* set a given key, so teardown removes only labels we added.
export const OWNER = "io.dtrcache.owner";
export const CACHE = "io.dtrcache.cache";
export const PURPOSE = "io.dtrcache.purpose";
export const HASH = "io.dtrcache.hash";
/**
 * Written on the service by older versions: the JSON list of users last assigned. No longer
 * written (the DTR reconciler keeps its own record, dtr-reconcile/record.ts); read once to adopt.
 */
export const LEGACY_USERS = "io.dtrcache.users";
/** On the service: the config revision that holds http.secret (read back so the secret stays stable). */
export const CONFIG_REF = "io.dtrcache.config";
/** On generated cert secrets: the host the certificate was made for, and the public PEM (base64). */
export const TLS_HOST = "io.dtrcache.tls-host";
export const TLS_PAIR = "io.dtrcache.tls-pair";
export const PUBLIC_CERT = "io.dtrcache.public-cert";
/**
 * In the service's ContainerSpec labels: sha256 of the part of the spec whose change replaces tasks
 * (TaskTemplate without this label, EndpointSpec) — the part a Swarm update can fail and roll back.
 * Tasks keep their ContainerSpec, so the failed tasks of a rolled-back update still carry the hash
 * of what was tried after Swarm restored the old spec (an automatic rollback clears PreviousSpec).
 * Its value only changes together with fields that replace tasks anyway, so it never restarts a
 * task on its own; the comparison ignores it (normalize.ts).
 */
export const ROLLOUT_HASH = "io.dtrcache.rollout-hash";
/** Node marker: `io.dtrcache.node-label.<key>` = owner id, present only when we added `<key>`. */
export const NODE_LABEL_MARKER_PREFIX = "io.dtrcache.node-label.";

export type BlobPurpose = "config" | "cert" | "key" | "ca";

export function nodeLabelMarker(key: string): string {
  return NODE_LABEL_MARKER_PREFIX + key;
}

export function ownerFilter(owner: string, cache?: string): { labels: string[] } {
  return { labels: cache === undefined ? [`${OWNER}=${owner}`] : [`${OWNER}=${owner}`, `${CACHE}=${cache}`] };
}
