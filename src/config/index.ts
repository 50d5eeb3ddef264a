// config/: resolve settings (CLI argument > environment > config file > default),
// parse sizes and durations, mask DSNs, format `pgfiles config show`.

export {
  ConfigError,
  SETTINGS,
  configFilePath,
  defaultCacheDir,
  resolveConfig,
  type Config,
  type Resolved,
  type Setting,
  type Source,
} from "./resolve";
export {
  LOG_LEVELS,
  ValueError,
  formatDuration,
  formatSize,
  parseBoolean,
  parseDuration,
  parseSize,
  type LogLevel,
} from "./parse";
export { formatConfig, maskDsn } from "./show";
