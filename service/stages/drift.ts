// The service's side of drift (fields no column names): what the validate Lambda is told the columns name, the sum
// of its groups' counts into the run's, and how a drift is said in a message.
import { ELEMENT_PATH, childTables, parentTable, type SourceConfig } from '../../contract/source-config.ts';
import {
  byCount,
  DRIFT_MAX_FIELDS,
  type DriftField,
  type NamedPaths,
  type RunDrift,
  type ValidateGroupManifest,
} from '../../contract/validate.ts';

/** The record paths a source's columns name, as the validate Lambda's drift counter reads them. */
export function namedPaths(source: Pick<SourceConfig, 'tables'>): NamedPaths {
  const columns: string[] = [];
  const json: string[] = [];
  const add = (path: string, type: string): void => {
    columns.push(path);
    if (type === 'json') json.push(path);
  };
  const [, parent] = parentTable(source);
  for (const column of Object.values(parent.columns)) add(column.path, column.type);
  for (const [, child] of childTables(source)) {
    const array = `${child.from ?? ''}[]`;
    for (const column of Object.values(child.columns)) {
      add(column.path === ELEMENT_PATH ? array : `${array}.${column.path}`, column.type);
    }
  }
  return { columns, json };
}

/**
 * The groups' drift summed: counts add up, each field keeps the sample of the first group (by group index) that
 * saw it, and the most frequent DRIFT_MAX_FIELDS are kept. A manifest is read only once committed, so a group
 * that was retried counts once, with what its last attempt wrote.
 */
export function sumDrift(manifests: readonly ValidateGroupManifest[]): RunDrift {
  const fields = new Map<string, DriftField>();
  let truncated = false;
  for (const manifest of [...manifests].sort((a, b) => a.group - b.group)) {
    truncated ||= manifest.drift?.truncated ?? false;
    for (const field of manifest.drift?.fields ?? []) {
      const key = `${field.type} ${field.path}`;
      const seen = fields.get(key);
      if (seen === undefined) fields.set(key, { ...field });
      else seen.count += field.count;
    }
  }
  const sorted = [...fields.values()].sort(byCount);
  return {
    records: manifests.reduce((n, m) => n + m.read, 0),
    fields: sorted.slice(0, DRIFT_MAX_FIELDS),
    truncated: truncated || sorted.length > DRIFT_MAX_FIELDS,
  };
}

/** `new field `discount` (number) in 1,234 of 5,000 records`. */
export function driftFieldText(field: DriftField, records: number): string {
  return `new field \`${field.path}\` (${field.type}) in ${count(field.count)} of ${count(records)} records`;
}

const LISTED = 5;

/** The reason a run with `onDrift: fail` fails: the new fields, the most frequent first. */
export function driftMessage(drift: RunDrift): string {
  const listed = drift.fields.slice(0, LISTED).map((f) => driftFieldText(f, drift.records));
  const more = drift.fields.length - LISTED;
  const rest =
    more > 0 ? `; and ${more}${drift.truncated ? '+' : ''} more` : drift.truncated ? '; and more' : '';
  return `schema drift, and the source has onDrift: fail: ${listed.join('; ')}${rest}. Name them in tables (or set onDrift: warn), then retry the run`;
}

const count = (n: number): string => n.toLocaleString('en-US');
