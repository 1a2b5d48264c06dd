export * from "./cache-process.js";
export * from "./oci.js";
export * from "./stream-client.js";
export * from "./token-registry.js";
export { FakeUpstream, digestOf, type BlobFault, type RecordedRequest } from "@dtrcache/cache-server";
