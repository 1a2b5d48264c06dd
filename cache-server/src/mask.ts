// Credential masking belongs to the config.yml contract (@dtrcache/config-yml masks every config
// message with it); the cache uses the same function for any other text that may quote a URL.
export { maskCredentials } from "@dtrcache/config-yml";
