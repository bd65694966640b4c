// Reads the sources file into checked, defaulted source configs, each with its records' JSON Schema
// loaded and compiled. A bad file fails at boot with every problem listed at once, each pointing at
// its line, because an operator fixing a config should not have to rerun the service per typo.
// The loader lives in ./sources/; this file is its public face.
export { loadSources, warehouseSchemaOf, type LoadedSource, type LoadedSources } from './sources/load.ts';
export { formatProblem, SourcesConfigError, type SourcesConfigProblem } from './sources/errors.ts';
