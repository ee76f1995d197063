/** The script host: designer scripts in isolates, reaching players through ScriptServices (DESIGN §5, §7). */
export {
  ScriptHost, type ScriptHostOptions, type ScriptSource, type BundleInfo, type BundleStats, type ColdLoadMeasurement,
} from './script-host.js';
export type { ScriptServices, KuafuPlayerInfo } from './script-services.js';
export { ScriptError, ScriptLimitError, type ScriptLimit, type ScriptErrorKind } from './script-error.js';
export { bundleScript, bundleOutFile, BundleError, type ScriptBundle } from './bundler.js';
export type { SourceLocation } from './source-maps.js';
