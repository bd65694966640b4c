// Turns ajv's errors into one sentence per problem, worded for the operator who fixes the file rather
// than in ajv's schema terms.
import { Ajv, type ErrorObject } from 'ajv';
import { fieldName, type Scope } from './scope.ts';
import { isRecord } from './unknown-values.ts';
import type { Path, Segment } from './yaml-positions.ts';

// Every validator whose errors reach reportAjvErrors is compiled here: the messages read the failing
// value and its schema, which ajv only attaches to errors when verbose. useDefaults is how a loaded
// source gets its defaults.
export const configAjv = new Ajv({ allErrors: true, useDefaults: true, verbose: true });

interface ExtraFieldRules {
  /** Completes `<field> …` for a field the schema does not allow directly at the checked level. */
  readonly explain?: (field: string) => string | undefined;
  /** Fields already reported at the checked level. */
  readonly reported?: ReadonlySet<string>;
}

export function reportAjvErrors(
  errors: readonly ErrorObject[] | null | undefined,
  at: Path,
  scope: Scope,
  rules: ExtraFieldRules = {},
): void {
  for (const error of collapseUnions(errors ?? [])) {
    const params: Record<string, unknown> = error.params;
    const where = [...at, ...pointerSegments(error.instancePath)];
    if (error.keyword === 'additionalProperties') {
      const field = String(params.additionalProperty);
      const direct = where.length === at.length;
      if (direct && rules.reported?.has(field) === true) continue;
      const explanation = direct ? rules.explain?.(field) : undefined;
      const namePatterns: unknown = error.parentSchema?.patternProperties;
      const named = [...where, field];
      if (explanation !== undefined) {
        scope.problem(named, explanation);
      } else if (isRecord(namePatterns)) {
        scope.problem(named, `is not a valid name: it must match ${Object.keys(namePatterns).join(' or ')}`);
      } else {
        scope.sentence(named, `unknown field "${fieldName(named)}"`);
      }
    } else if (error.keyword === 'required') {
      scope.problem([...where, String(params.missingProperty)], 'is required');
    } else {
      scope.problem(where, predicate(error));
    }
  }
}

// ajv reports every branch of an anyOf that failed; keep only the anyOf itself.
function collapseUnions(errors: readonly ErrorObject[]): ErrorObject[] {
  const unions = errors.filter((error) => error.keyword === 'anyOf');
  return errors.filter(
    (error) =>
      !unions.some((union) => union !== error && error.schemaPath.startsWith(`${union.schemaPath}/`)),
  );
}

function pointerSegments(pointer: string): Segment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((segment) => (/^(0|[1-9]\d*)$/.test(segment) ? Number(segment) : segment));
}

function predicate(error: ErrorObject): string {
  const params: Record<string, unknown> = error.params;
  const parent: Record<string, unknown> = error.parentSchema ?? {};
  switch (error.keyword) {
    case 'type':
      return `must be ${describeTypes(params.type)}`;
    case 'enum':
      return `must be one of ${listOf(params.allowedValues)}`;
    case 'const':
      return `must be ${JSON.stringify(params.allowedValue)}`;
    case 'minimum':
    case 'maximum':
      return describeRange(parent);
    case 'minLength':
      return params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters`;
    case 'minItems':
    case 'minProperties':
      return params.limit === 1 ? 'must not be empty' : `must have at least ${String(params.limit)} entries`;
    case 'uniqueItems':
      return `must not list ${JSON.stringify(itemAt(error.data, params.i))} twice`;
    case 'pattern':
      return typeof parent.description === 'string'
        ? `must be ${parent.description}`
        : `must match ${String(params.pattern)}`;
    case 'anyOf':
      return `must be ${describeBranches(error.schema)}`;
    default:
      return error.message ?? 'is invalid';
  }
}

const TYPE_NOUNS: Readonly<Record<string, string>> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  object: 'a map',
  array: 'a list',
  null: 'null',
};

function describeTypes(types: unknown): string {
  const names = Array.isArray(types) ? types : [types];
  const nouns = names.map((name) => TYPE_NOUNS[String(name)] ?? String(name));
  const last = nouns.pop();
  return nouns.length === 0 ? String(last) : `${nouns.join(', ')} or ${String(last)}`;
}

function describeBranches(branches: unknown): string {
  if (!Array.isArray(branches)) return 'valid';
  return describeTypes(branches.map((branch) => (isRecord(branch) ? branch.type : undefined)));
}

function describeRange(schema: Record<string, unknown>): string {
  const { minimum, maximum } = schema;
  if (typeof minimum === 'number' && typeof maximum === 'number')
    return `must be from ${minimum} to ${maximum}`;
  if (typeof minimum === 'number') return `must be at least ${minimum}`;
  return `must be at most ${String(maximum)}`;
}

function listOf(values: unknown): string {
  return Array.isArray(values) ? values.map(String).join(', ') : String(values);
}

function itemAt(list: unknown, index: unknown): unknown {
  return Array.isArray(list) && typeof index === 'number' ? list[index] : undefined;
}
