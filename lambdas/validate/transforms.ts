import type { Transforms } from '../../contract/source-config.ts';

type Schema = Record<string, unknown>;
type Step = (value: unknown) => unknown;

const CANONICAL_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const NUMERIC = /^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$/;

function types(schema: Schema): string[] {
  const t = schema.type;
  return Array.isArray(t) ? (t as string[]) : typeof t === 'string' ? [t] : [];
}

/**
 * Compiles the source's transforms against its schema into one function that rewrites a parsed record in
 * place: trimmed strings, `date-time` values in UTC ISO-8601, numeric strings as numbers where the schema wants a
 * number. Compiled once per schema, so a record costs one walk over the fields the schema names. Hand-written
 * because ajv's own `coerceTypes` also coerces the other way (numbers into strings, nulls into zeros), which
 * would hide bad data.
 */
export function compileTransform(schema: Schema, transforms: Transforms): (record: unknown) => unknown {
  const walk = compile(schema, transforms);
  return (record) => (transforms.trimStrings ? walk(trimAll(record)) : walk(record));
}

function compile(schema: Schema, t: Transforms): Step {
  const steps: Step[] = [];
  const kinds = types(schema);
  if (t.timestampsToUtc && schema.format === 'date-time') {
    steps.push((v) => {
      // Already canonical (what toISOString would give back): the common case costs one regex test, no Date.
      if (typeof v !== 'string' || CANONICAL_UTC.test(v)) return v;
      const ms = Date.parse(v);
      return Number.isNaN(ms) ? v : new Date(ms).toISOString();
    });
  }
  if (t.coerceNumbers && (kinds.includes('number') || kinds.includes('integer'))) {
    steps.push((v) => (typeof v === 'string' && NUMERIC.test(v) ? Number(v) : v));
  }
  const properties = schema.properties as Record<string, Schema> | undefined;
  if (properties) {
    const fields = Object.entries(properties)
      .map(([name, sub]) => [name, compile(sub, t)] as const)
      .filter(([, step]) => step !== identity);
    if (fields.length > 0) {
      steps.push((v) => {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
        const record = v as Record<string, unknown>;
        for (const [name, step] of fields) if (name in record) record[name] = step(record[name]);
        return record;
      });
    }
  }
  const items = schema.items as Schema | undefined;
  if (items && typeof items === 'object' && !Array.isArray(items)) {
    const step = compile(items, t);
    if (step !== identity) steps.push((v) => (Array.isArray(v) ? v.map(step) : v));
  }
  if (steps.length === 0) return identity;
  if (steps.length === 1) return steps[0] as Step;
  return (v) => steps.reduce((acc, step) => step(acc), v);
}

const identity: Step = (v) => v;

function trimAll(value: unknown): unknown {
  if (typeof value === 'string') return value.trim();
  if (Array.isArray(value)) return value.map(trimAll);
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) record[key] = trimAll(record[key]);
  }
  return value;
}
