// Reads the sources file and checks every source in it, collecting the problems of all of them
// before failing, so an operator fixing a config sees every mistake in one run.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { SOURCE_NAME_PATTERN, type SourceConfig } from '../../../contract/source-config.ts';
import { SourcesConfigError } from './errors.ts';
import { deriveRecordSchema } from './derived-schema.ts';
import { loadRecordSchema } from './record-schema.ts';
import { ProblemSink, scopeOf, type Scope } from './scope.ts';
import { checkSource } from './source.ts';
import { errorMessage, isErrorCode, isRecord } from './unknown-values.ts';

export type LoadedSource = SourceConfig & {
  readonly name: string;
  /** Absolute path of the records' JSON Schema file; absent when the schema is derived from `tables`. */
  readonly schemaPath?: string;
  /** The records' JSON Schema: the file's, or without one, derived from `tables` (see derived-schema.ts). */
  readonly schemaDocument: Record<string, unknown>;
};

export interface LoadedSources {
  /** Absolute path of the sources file. */
  readonly file: string;
  /** In the order the file declares them. */
  readonly sources: ReadonlyMap<string, LoadedSource>;
}

const SOURCE_NAME = new RegExp(SOURCE_NAME_PATTERN);

/** The warehouse schema a source's tables go to: its own `warehouse.schema`, or the service's. */
export function warehouseSchemaOf(source: Pick<SourceConfig, 'warehouse'>, serviceSchema: string): string {
  return source.warehouse?.schema ?? serviceSchema;
}

/**
 * Reads, checks and defaults every source in a sources YAML file; throws a `SourcesConfigError` listing all
 * problems. `warehouseSchema` is the service's (AFLUENTE_WAREHOUSE_SCHEMA), where sources without their own go.
 */
export async function loadSources(file: string, warehouseSchema = 'public'): Promise<LoadedSources> {
  const absolute = path.resolve(file);
  const text = await readSourcesFile(file, absolute);
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (document.errors.length > 0) {
    throw new SourcesConfigError(
      file,
      document.errors.map((error) => {
        const { line, col } = lines.linePos(error.pos[0]);
        return { field: '', message: error.message, line, column: col };
      }),
    );
  }

  const sink = new ProblemSink(document, lines);
  const folder = path.dirname(absolute);
  const sources = new Map<string, LoadedSource>();
  for (const [name, raw] of declaredSources(document.toJS(), scopeOf(sink, []))) {
    const scope = scopeOf(sink, ['sources', name], name);
    const config = checkSource(raw, scope);
    const schemaFile =
      isRecord(raw) && typeof raw.schema === 'string' && raw.schema !== '' ? raw.schema : undefined;
    const schema = schemaFile === undefined ? undefined : await loadRecordSchema(schemaFile, folder, scope);
    if (config !== undefined && schemaFile === undefined) {
      sources.set(name, { ...config, name, schemaDocument: deriveRecordSchema(config) });
    } else if (config !== undefined && schema !== undefined) {
      sources.set(name, { ...config, name, schemaPath: schema.path, schemaDocument: schema.document });
    }
  }
  checkTableOwners(sources, warehouseSchema, sink);
  if (sink.problems.length > 0) throw new SourcesConfigError(file, sink.sorted());
  return { file: absolute, sources };
}

async function readSourcesFile(file: string, absolute: string): Promise<string> {
  try {
    return await readFile(absolute, 'utf8');
  } catch (error) {
    const message = isErrorCode(error, 'ENOENT')
      ? `sources file not found: ${file}`
      : `cannot read sources file ${file}: ${errorMessage(error)}`;
    throw new SourcesConfigError(file, [{ field: '', message }]);
  }
}

function declaredSources(root: unknown, scope: Scope): [string, unknown][] {
  if (!isRecord(root)) {
    scope.problem(['sources'], 'is required: the file must be a map with a "sources" key');
    return [];
  }
  for (const key of Object.keys(root)) {
    if (key !== 'sources') scope.sentence([key], `unknown field "${key}"`);
  }
  const { sources } = root;
  if (sources === undefined) {
    scope.problem(['sources'], 'is required');
    return [];
  }
  if (!isRecord(sources)) {
    scope.problem(['sources'], 'must be a map of source name to source');
    return [];
  }
  const entries = Object.entries(sources);
  if (entries.length === 0) scope.problem(['sources'], 'must declare at least one source');
  for (const [name] of entries) {
    if (!SOURCE_NAME.test(name)) {
      scope.problem(
        ['sources', name],
        'is not a valid source name: it appears in lake keys, so use a-z, 0-9 and _, start with a letter and keep it to 48 characters',
      );
    }
  }
  return entries;
}

/**
 * Two sources writing a table of one name into one schema would merge into each other's rows (and fail at load
 * when their columns differ): each such table is a problem at the later source, naming the earlier one.
 */
function checkTableOwners(
  sources: ReadonlyMap<string, LoadedSource>,
  serviceSchema: string,
  sink: ProblemSink,
) {
  const owners = new Map<string, string>();
  for (const [name, source] of sources) {
    const schema = warehouseSchemaOf(source, serviceSchema);
    for (const table of Object.keys(source.tables)) {
      const key = `${schema}.${table}`;
      const owner = owners.get(key);
      if (owner === undefined) owners.set(key, name);
      else
        scopeOf(sink, ['sources', name], name).problem(
          ['tables', table],
          `is also a table of source "${owner}" in warehouse schema "${schema}": give one of them its own ` +
            '`warehouse: { schema }`, or another table name',
        );
    }
  }
}
