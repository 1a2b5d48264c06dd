// The cache's config.yml: the model, the rules and the reader are @dtrcache/config-yml's (the
// same package the controller renders the file with); the cache adds only reading the file.
// Names are re-exported so the rest of the cache imports its configuration from here.
import { readFile } from "node:fs/promises";
import { ConfigError, parseConfig, type CacheConfig, type ConfigProblem } from "@dtrcache/config-yml";

export {
  ConfigError,
  DEFAULT_DEBUG_ADDR,
  DEFAULT_LIMITS,
  formatProblem,
  parseConfig,
  type CacheConfig,
  type ConfigProblem,
  type ConfigResult,
  type ConnectionLimits,
  type DebugListen,
  type DownstreamOptions,
  type UpstreamConfig,
} from "@dtrcache/config-yml";

/** File I/O apart from validation: read and parse, throwing ConfigError with every problem. */
export async function loadConfigFile(path: string): Promise<{ config: CacheConfig; warnings: ConfigProblem[] }> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError([{ path: "(file)", message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]);
  }
  const result = parseConfig(text);
  if (!result.ok) throw new ConfigError(result.errors);
  return { config: result.config, warnings: result.warnings };
}
