// @dtrcache/config-yml owns the cache's config.yml: the typed model, durations and sizes, the
// writer (render) and the reader (parse), all under one set of rules. The controller's renderer
// (crds) and the cache-server's loader both use it; neither keeps rules of its own.
export * from "./duration.js";
export * from "./size.js";
export * from "./model.js";
export * from "./rules.js";
export { maskCredentials } from "./mask.js";
export { parseConfig } from "./parse.js";
export { renderConfig, ConfigRenderError, type ConfigDocument, type Rendered } from "./render.js";
