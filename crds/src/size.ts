// Sizes belong to the config.yml contract (@dtrcache/config-yml); re-exported so code that imports
// them from crds keeps working.
export { parseSize, SIZE_HINT } from "@dtrcache/config-yml";
