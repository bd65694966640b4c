// Checks one source and returns it with its defaults applied. Its shape is checked with ajv, but the
// parts with shorthands or several kinds are checked piece by piece so that each mistake gets one
// clear message instead of one per union branch.
import type { ValidateFunction } from 'ajv';
import { Type, type Static, type TObject } from 'typebox';
import {
  AUTH_KINDS,
  AuthSchemas,
  PAGINATION_KINDS,
  PaginationSchemas,
  SourceConfigSchema,
  type Auth,
  type AuthKind,
  type Pagination,
  type PaginationKind,
  type SourceConfig,
} from '../../../contract/source-config.ts';
import { configAjv, reportAjvErrors } from './messages.ts';
import { checkSchedule } from './schedule.ts';
import type { Scope } from './scope.ts';
import { checkTables } from './tables.ts';
import { isRecord } from './unknown-values.ts';

const AnyMap = Type.Record(Type.String(), Type.Unknown());

const SourceShape = Type.Object(
  {
    ...SourceConfigSchema.properties,
    auth: Type.Record(Type.String(), Type.Unknown(), { default: { kind: 'none' } }),
    pagination: AnyMap,
    schedule: Type.Optional(Type.Unknown()),
    tables: Type.Record(Type.String(), Type.Unknown(), { minProperties: 1 }),
  },
  { additionalProperties: false },
);

const validateSourceShape = configAjv.compile<Static<typeof SourceShape>>(SourceShape);

/** A field that takes one of several kinds, each with its own fields. */
interface KindedShape<K extends string, T> {
  readonly field: 'pagination' | 'auth';
  readonly kinds: readonly K[];
  readonly validators: Readonly<Record<K, ValidateFunction<T>>>;
  /** Every field some kind takes, so a field of another kind is told apart from a misspelt one. */
  readonly fields: ReadonlySet<string>;
}

function kindedShape<K extends string, T>(
  field: KindedShape<K, T>['field'],
  kinds: readonly K[],
  schemas: Readonly<Record<K, TObject>>,
): KindedShape<K, T> {
  const validators = Object.fromEntries(kinds.map((kind) => [kind, configAjv.compile<T>(schemas[kind])]));
  const fields = new Set(kinds.flatMap((kind) => Object.keys(schemas[kind].properties)));
  return { field, kinds, validators: validators as Record<K, ValidateFunction<T>>, fields };
}

const paginationShape = kindedShape<PaginationKind, Pagination>(
  'pagination',
  PAGINATION_KINDS,
  PaginationSchemas,
);
const authShape = kindedShape<AuthKind, Auth>('auth', AUTH_KINDS, AuthSchemas);

// Fields people write when they paste a credential in, and the field that names its variable instead.
const LITERAL_SECRET_FIELDS: Readonly<Record<string, string>> = {
  token: 'tokenEnv',
  value: 'valueEnv',
  apiKey: 'valueEnv',
  key: 'valueEnv',
  username: 'usernameEnv',
  password: 'passwordEnv',
};
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization']);
const SECRETS_BY_REFERENCE = 'secrets are referenced by environment variable name';

export function checkSource(raw: unknown, scope: Scope): SourceConfig | undefined {
  if (!isRecord(raw)) {
    scope.problem([], 'must be a map with request, pagination and tables');
    return;
  }
  const before = scope.count();
  const shapeOk = validateSourceShape(raw);
  if (!shapeOk) reportAjvErrors(validateSourceShape.errors, [], scope);
  // The pieces below are checked even when the rest is wrong, so that one run shows every problem.
  if (isRecord(raw.request)) checkRequest(raw.request, scope);
  const pagination = isRecord(raw.pagination) ? checkKind(raw.pagination, paginationShape, scope) : undefined;
  const auth = isRecord(raw.auth) ? checkAuth(raw.auth, scope) : undefined;
  const schedule = raw.schedule === undefined ? undefined : checkSchedule(raw.schedule, scope);
  const tables = isRecord(raw.tables) ? checkTables(raw.tables, scope) : undefined;
  if (
    !shapeOk ||
    scope.count() > before ||
    pagination === undefined ||
    auth === undefined ||
    tables === undefined
  ) {
    return;
  }
  const { pagination: _pagination, auth: _auth, schedule: _schedule, tables: _tables, ...rest } = raw;
  return { ...rest, pagination, auth, tables, ...(schedule === undefined ? {} : { schedule }) };
}

function checkRequest(request: Record<string, unknown>, scope: Scope): void {
  if (typeof request.url === 'string') {
    const url = URL.parse(request.url);
    if (url === null) {
      scope.problem(['request', 'url'], `must be an absolute http or https URL, not "${request.url}"`);
    } else if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      scope.problem(['request', 'url'], `must use http or https, not ${url.protocol.slice(0, -1)}`);
    } else if (url.username !== '' || url.password !== '') {
      scope.problem(['request', 'url'], `must not carry credentials: ${SECRETS_BY_REFERENCE} (use auth)`);
    }
  }
  if (isRecord(request.headers)) {
    for (const header of Object.keys(request.headers)) {
      if (SECRET_HEADERS.has(header.toLowerCase())) {
        scope.problem(['request', 'headers', header], `is not allowed: ${SECRETS_BY_REFERENCE} (use auth)`);
      }
    }
  }
}

function checkAuth(auth: Record<string, unknown>, scope: Scope): Auth | undefined {
  const literals = new Set(Object.keys(auth).filter((field) => Object.hasOwn(LITERAL_SECRET_FIELDS, field)));
  for (const field of literals) {
    scope.problem(
      ['auth', field],
      `is not allowed: ${SECRETS_BY_REFERENCE} (use ${LITERAL_SECRET_FIELDS[field] ?? 'an *Env field'})`,
    );
  }
  return checkKind(auth, authShape, scope, literals);
}

// Validates against the one kind the value names, so a mistake is not reported once per kind.
function checkKind<K extends string, T>(
  value: Record<string, unknown>,
  shape: KindedShape<K, T>,
  scope: Scope,
  reported?: ReadonlySet<string>,
): T | undefined {
  const kind = shape.kinds.find((allowed) => allowed === value.kind);
  if (kind === undefined) {
    scope.problem(
      [shape.field, 'kind'],
      `${value.kind === undefined ? 'is required: one' : 'must be one'} of ${shape.kinds.join(', ')}`,
    );
    return;
  }
  const validate = shape.validators[kind];
  if (validate(value)) return value;
  reportAjvErrors(validate.errors, [shape.field], scope, {
    reported,
    explain: (field) => (shape.fields.has(field) ? `is not allowed for kind "${kind}"` : undefined),
  });
}
