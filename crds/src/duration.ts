// Durations belong to the config.yml contract (@dtrcache/config-yml); re-exported so code that
// imports them from crds keeps working.
export { parseDuration, DURATION_HINT, type Duration, type DurationUnit } from "@dtrcache/config-yml";
