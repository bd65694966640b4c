// One source, as the service, the Lambdas and the Spark jobs all see it once defaults are applied.
// This is the only definition of that shape; it stays pure (no Node I/O) so a bundled Lambda can import it.
// The YAML accepts a few shorthands (a column as a bare type, a schedule as a bare cron string); the
// loader in service/config expands them, so consumers only ever meet the normalized form below.
import { Type, type Static, type TObject } from 'typebox';

export const PAGINATION_KINDS = ['page', 'offset', 'cursor', 'link', 'none'] as const;
export type PaginationKind = (typeof PAGINATION_KINDS)[number];

export const AUTH_KINDS = ['none', 'bearer', 'apiKey', 'basic'] as const;
export type AuthKind = (typeof AUTH_KINDS)[number];

export const API_KEY_LOCATIONS = ['header', 'query'] as const;
export type ApiKeyLocation = (typeof API_KEY_LOCATIONS)[number];

/** What a run does when its records hold fields no column names (drift): show them, or also fail. */
export const ON_DRIFT_MODES = ['warn', 'fail'] as const;
export type OnDriftMode = (typeof ON_DRIFT_MODES)[number];

/** What happens to record fields that no column names. */
export const UNKNOWN_FIELDS_MODES = ['ignore', 'keep', 'reject'] as const;
export type UnknownFieldsMode = (typeof UNKNOWN_FIELDS_MODES)[number];

/** What a trigger does while the source already has `maxActiveRuns` runs in flight. */
export const ACTIVE_RUN_POLICIES = ['queue', 'reject'] as const;
export type ActiveRunPolicy = (typeof ACTIVE_RUN_POLICIES)[number];

/** The engines that run the transform and load stages: Spark, or DuckDB embedded in the worker. */
export const STEP_ENGINES = ['embedded', 'spark'] as const;
export type StepEngine = (typeof STEP_ENGINES)[number];

/** What a source or a run asks for: an engine, or `auto` (embedded up to a size, Spark above it). */
export const ENGINES = ['auto', ...STEP_ENGINES] as const;
export type Engine = (typeof ENGINES)[number];

export const SCALAR_COLUMN_TYPES = [
  'bigint',
  'int',
  'smallint',
  'string',
  'boolean',
  'double',
  'date',
  'timestamp',
  'json',
] as const;
export type ScalarColumnType = (typeof SCALAR_COLUMN_TYPES)[number];
export type DecimalColumnType = `decimal(${number},${number})`;
/** A column type in its normalized spelling: a scalar name or `decimal(p,s)` without spaces. */
export type ColumnType = ScalarColumnType | DecimalColumnType;
export type ParsedColumnType =
  | { readonly kind: ScalarColumnType }
  | { readonly kind: 'decimal'; readonly precision: number; readonly scale: number };

/** Redshift's and Spark's upper bound for a decimal's precision. */
export const DECIMAL_MAX_PRECISION = 38;

// Source names end up in lake keys (source=<name>), so they stay short and path-safe.
export const SOURCE_NAME_PATTERN = '^[a-z][a-z0-9_]{0,47}$';
// Table and column names become warehouse identifiers: 63 is PostgreSQL's limit, and Redshift's is higher.
export const IDENTIFIER_PATTERN = '^[a-z_][a-z0-9_]{0,62}$';
export const ENV_NAME_PATTERN = '^[A-Z_][A-Z0-9_]*$';
export const FIELD_PATH_PATTERN = '^[^.\\s]+(\\.[^.\\s]+)*$';
/** The path of a column that reads the array element itself rather than a field of it. */
export const ELEMENT_PATH = '.';
/** A child table's column with this name and no path reads the element of an array of scalars. */
export const ELEMENT_COLUMN = 'value';

const COLUMN_PATH_PATTERN = '^(\\.|[^.\\s]+(\\.[^.\\s]+)*)$';
const COLUMN_TYPE_PATTERN = `^(${SCALAR_COLUMN_TYPES.join('|')}|decimal\\([0-9]+,[0-9]+\\))$`;
// RFC 9110 token characters: anything else is rejected by the HTTP client at run time.
const HEADER_NAME_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

export type ColumnTypeReading =
  | { readonly ok: true; readonly type: ColumnType; readonly parsed: ParsedColumnType }
  | { readonly ok: false; readonly reason: string };

const DECIMAL = /^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$/;

export function isScalarColumnType(text: string): text is ScalarColumnType {
  return (SCALAR_COLUMN_TYPES as readonly string[]).includes(text);
}

/** Reads a column type as written in YAML; `reason` completes a sentence that starts with the field. */
export function readColumnType(text: string): ColumnTypeReading {
  if (isScalarColumnType(text)) return { ok: true, type: text, parsed: { kind: text } };
  const match = DECIMAL.exec(text);
  if (match === null) {
    return {
      ok: false,
      reason: `must be one of ${SCALAR_COLUMN_TYPES.join(', ')} or decimal(p,s), not "${text}"`,
    };
  }
  const precision = Number(match[1]);
  const scale = Number(match[2]);
  if (precision < 1 || precision > DECIMAL_MAX_PRECISION) {
    return {
      ok: false,
      reason: `must have a decimal precision from 1 to ${DECIMAL_MAX_PRECISION}, not ${precision} in "${text}"`,
    };
  }
  if (scale > precision) {
    return {
      ok: false,
      reason: `must have a decimal scale from 0 to its precision ${precision}, not ${scale} in "${text}"`,
    };
  }
  return { ok: true, type: `decimal(${precision},${scale})`, parsed: { kind: 'decimal', precision, scale } };
}

/** Parses a type from a validated config; a malformed one is a bug upstream, so it throws. */
export function parseColumnType(type: ColumnType): ParsedColumnType {
  const reading = readColumnType(type);
  if (!reading.ok) throw new Error(`column type ${reading.reason}`);
  return reading.parsed;
}

const NonEmptyString = Type.String({ minLength: 1 });
export const IdentifierSchema = Type.String({
  pattern: IDENTIFIER_PATTERN,
  description: 'a lowercase name (a-z, 0-9, _; not starting with a digit; at most 63 characters)',
});
export const EnvNameSchema = Type.String({
  pattern: ENV_NAME_PATTERN,
  description: 'an environment variable name (A-Z, 0-9 and _; not starting with a digit)',
});
export const FieldPathSchema = Type.String({
  pattern: FIELD_PATH_PATTERN,
  description: 'a dot path such as data or customer.address.city',
});
export const ColumnPathSchema = Type.String({
  pattern: COLUMN_PATH_PATTERN,
  description: 'a dot path such as customer.address.city, or . for the array element itself',
});
const PageSize = Type.Integer({ minimum: 1 });
/** A guard against an API that never stops paging. @default 100000 */
const MaxPages = Type.Integer({ minimum: 1, default: 100_000 });

export const PaginationSchemas = {
  page: Type.Object(
    {
      kind: Type.Literal('page'),
      /** Query parameter that takes the page number. @default "page" */
      pageParam: Type.String({ minLength: 1, default: 'page' }),
      /** Query parameter that takes the page size; absent means the API's own size is `size`. */
      sizeParam: Type.Optional(NonEmptyString),
      size: PageSize,
      /** Number of the first page. @default 1 */
      startPage: Type.Integer({ minimum: 0, default: 1 }),
      maxPages: MaxPages,
    },
    { additionalProperties: false },
  ),
  offset: Type.Object(
    {
      kind: Type.Literal('offset'),
      /** @default "offset" */
      offsetParam: Type.String({ minLength: 1, default: 'offset' }),
      /** @default "limit" */
      limitParam: Type.String({ minLength: 1, default: 'limit' }),
      size: PageSize,
      maxPages: MaxPages,
    },
    { additionalProperties: false },
  ),
  cursor: Type.Object(
    {
      kind: Type.Literal('cursor'),
      /** Where the next page's token sits in a page body; a missing or empty token ends the run. */
      cursorPath: FieldPathSchema,
      /** Query parameter that takes the token. */
      cursorParam: NonEmptyString,
      maxPages: MaxPages,
    },
    { additionalProperties: false },
  ),
  // Follows the Link header's rel="next" until there is none.
  link: Type.Object({ kind: Type.Literal('link'), maxPages: MaxPages }, { additionalProperties: false }),
  none: Type.Object({ kind: Type.Literal('none'), maxPages: MaxPages }, { additionalProperties: false }),
} as const satisfies Record<PaginationKind, TObject>;

export const PaginationSchema = Type.Union([
  PaginationSchemas.page,
  PaginationSchemas.offset,
  PaginationSchemas.cursor,
  PaginationSchemas.link,
  PaginationSchemas.none,
]);
export type Pagination = Static<typeof PaginationSchema>;

// Secrets are named by environment variable, never written in the config.
export const AuthSchemas = {
  none: Type.Object({ kind: Type.Literal('none') }, { additionalProperties: false }),
  bearer: Type.Object(
    { kind: Type.Literal('bearer'), tokenEnv: EnvNameSchema },
    { additionalProperties: false },
  ),
  apiKey: Type.Object(
    {
      kind: Type.Literal('apiKey'),
      in: Type.Enum(API_KEY_LOCATIONS),
      name: NonEmptyString,
      valueEnv: EnvNameSchema,
    },
    { additionalProperties: false },
  ),
  basic: Type.Object(
    { kind: Type.Literal('basic'), usernameEnv: EnvNameSchema, passwordEnv: EnvNameSchema },
    { additionalProperties: false },
  ),
} as const satisfies Record<AuthKind, TObject>;

export const AuthSchema = Type.Union([
  AuthSchemas.none,
  AuthSchemas.bearer,
  AuthSchemas.apiKey,
  AuthSchemas.basic,
]);
export type Auth = Static<typeof AuthSchema>;

export const RequestSchema = Type.Object(
  {
    /** An absolute http or https URL. */
    url: NonEmptyString,
    /** @default 10000 */
    timeoutMs: Type.Integer({ minimum: 100, maximum: 300_000, default: 10_000 }),
    /** Non-secret headers; credentials go through `auth`. @default {} */
    headers: Type.Record(Type.String({ pattern: HEADER_NAME_PATTERN }), Type.String(), {
      additionalProperties: false,
      default: {},
    }),
    /** Fixed query parameters sent with every page. @default {} */
    query: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()]), {
      default: {},
    }),
  },
  { additionalProperties: false },
);
export type RequestSpec = Static<typeof RequestSchema>;

export const IncrementalSchema = Type.Object(
  {
    /** The record field whose greatest value becomes the next run's cursor. */
    cursorField: FieldPathSchema,
    /** Query parameter that takes the cursor. */
    param: NonEmptyString,
    /** Cursor of the first run; absent means the first run fetches everything. */
    initial: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type Incremental = Static<typeof IncrementalSchema>;

/**
 * How a run's time window (`params.from`/`params.to`, and each window of a backfill) reaches the API: the
 * window's bounds go out as these query parameters, as ISO-8601 UTC date-times. A run with a window does not
 * send the incremental cursor and does not move it.
 */
export const WindowSchema = Type.Object(
  {
    /** Query parameter that takes the window's start (inclusive). */
    fromParam: NonEmptyString,
    /** Query parameter that takes the window's end (exclusive); absent means the API takes only a start. */
    toParam: Type.Optional(NonEmptyString),
  },
  { additionalProperties: false },
);
export type WindowSpec = Static<typeof WindowSchema>;

/**
 * How long each stage may take, in seconds, from the moment a worker first started it (across that stage's
 * attempts) until it must have finished. A stage past its deadline is failed, and any EMR step it started is
 * cancelled.
 */
export const DeadlinesSchema = Type.Object(
  {
    /** @default 7200 */
    ingest: Type.Integer({ minimum: 1, default: 7200 }),
    /** @default 7200 */
    validate: Type.Integer({ minimum: 1, default: 7200 }),
    /** @default 21600 */
    transform: Type.Integer({ minimum: 1, default: 21_600 }),
    /** @default 21600 */
    load: Type.Integer({ minimum: 1, default: 21_600 }),
  },
  { additionalProperties: false, default: {} },
);
export type Deadlines = Static<typeof DeadlinesSchema>;

export const ScheduleSchema = Type.Object(
  {
    cron: NonEmptyString,
    /** An IANA time zone; absent means UTC. */
    timezone: Type.Optional(NonEmptyString),
  },
  { additionalProperties: false },
);
export type Schedule = Static<typeof ScheduleSchema>;

export const ColumnSchema = Type.Object(
  { path: ColumnPathSchema, type: Type.Unsafe<ColumnType>(Type.String({ pattern: COLUMN_TYPE_PATTERN })) },
  { additionalProperties: false },
);
export type ColumnSpec = Static<typeof ColumnSchema>;

export const TableSchema = Type.Object(
  {
    /** Path of the array a child table is taken from; the one table without it is the parent. */
    from: Type.Optional(FieldPathSchema),
    /** Child column → parent key column, so every child row joins back to its parent row. */
    parentKey: Type.Optional(
      Type.Record(Type.String({ pattern: IDENTIFIER_PATTERN }), IdentifierSchema, {
        additionalProperties: false,
        minProperties: 1,
      }),
    ),
    key: Type.Array(IdentifierSchema, { minItems: 1, uniqueItems: true }),
    /** Column that receives the element's position in the `from` array (children only). */
    index: Type.Optional(IdentifierSchema),
    columns: Type.Record(Type.String({ pattern: IDENTIFIER_PATTERN }), ColumnSchema, {
      additionalProperties: false,
      minProperties: 1,
    }),
    /** @default "keep" */
    unknownFields: Type.Enum(UNKNOWN_FIELDS_MODES, { default: 'keep' }),
  },
  { additionalProperties: false },
);
export type TableSpec = Static<typeof TableSchema>;

export const QualitySchema = Type.Object(
  {
    /** Share of a run's records that may be rejected before the run fails. @default 0.05 */
    maxRejectRatio: Type.Number({ minimum: 0, maximum: 1, default: 0.05 }),
  },
  { additionalProperties: false, default: {} },
);
export type Quality = Static<typeof QualitySchema>;

export const TransformsSchema = Type.Object(
  {
    /** Trim leading and trailing white space from every string. @default false */
    trimStrings: Type.Boolean({ default: false }),
    /** Rewrite every value the schema declares `format: date-time` as UTC ISO-8601 (`…Z`). @default true */
    timestampsToUtc: Type.Boolean({ default: true }),
    /** Turn numeric strings into numbers where the schema says `number` or `integer`. @default false */
    coerceNumbers: Type.Boolean({ default: false }),
  },
  { additionalProperties: false, default: {} },
);
export type Transforms = Static<typeof TransformsSchema>;

// Defaults live in the schema so the loader applies them by validating (ajv's useDefaults). A
// consumer that validates an already-normalized config must not turn useDefaults on: ajv refuses
// defaults inside the pagination and auth unions.
export const SourceConfigSchema = Type.Object(
  {
    request: RequestSchema,
    /** Lets `request.url` reach loopback and private hosts. @default false */
    allowPrivateNetwork: Type.Boolean({ default: false }),
    /** @default { kind: "none" } */
    auth: Type.Union([AuthSchemas.none, AuthSchemas.bearer, AuthSchemas.apiKey, AuthSchemas.basic], {
      default: { kind: 'none' },
    }),
    /** Path of the records array in a page body; absent means the body is the array. */
    records: Type.Optional(FieldPathSchema),
    pagination: PaginationSchema,
    incremental: Type.Optional(IncrementalSchema),
    /** Absent means the API cannot be asked for a time window, so runs with a window and backfills are refused. */
    window: Type.Optional(WindowSchema),
    /** Absent means the source runs only when triggered. */
    schedule: Type.Optional(ScheduleSchema),
    /** @default 1 */
    maxActiveRuns: Type.Integer({ minimum: 1, default: 1 }),
    /** @default "queue" */
    onActiveRun: Type.Enum(ACTIVE_RUN_POLICIES, { default: 'queue' }),
    /**
     * The engine of the transform and load stages: `embedded` (DuckDB in the worker), `spark`, or `auto`
     * (embedded while the run's validated bytes are at most AFLUENTE_EMBEDDED_MAX_BYTES). @default "auto"
     */
    engine: Type.Enum(ENGINES, { default: 'auto' }),
    /**
     * Where the source's tables go in the warehouse; absent means the service's AFLUENTE_WAREHOUSE_SCHEMA. Two
     * sources may not write a table of the same name into one schema.
     */
    warehouse: Type.Optional(
      Type.Object(
        {
          schema: Type.String({
            pattern: IDENTIFIER_PATTERN,
            description:
              'a warehouse schema name (a-z, 0-9, _; not starting with a digit; at most 63 characters)',
          }),
        },
        { additionalProperties: false },
      ),
    ),
    /**
     * Path of the records' JSON Schema (draft-07), relative to the sources file's folder; absent means the
     * service derives one from `tables` (types, key columns required, nested paths).
     */
    schema: Type.Optional(NonEmptyString),
    tables: Type.Record(Type.String({ pattern: IDENTIFIER_PATTERN }), TableSchema, {
      additionalProperties: false,
      minProperties: 1,
    }),
    /** @default { maxRejectRatio: 0.05 } */
    quality: QualitySchema,
    /** What the validate stage changes before it checks a record against the schema. */
    transforms: TransformsSchema,
    /**
     * Fields no column names (drift) are counted by the validate stage and shown on the run and the source;
     * `fail` also fails the run once validated, naming them, before anything is loaded. @default "warn"
     */
    onDrift: Type.Enum(ON_DRIFT_MODES, { default: 'warn' }),
    /** Seconds each stage may take from its first start. @default { ingest: 7200, validate: 7200, transform: 21600, load: 21600 } */
    deadlineSeconds: DeadlinesSchema,
  },
  { additionalProperties: false },
);
export type SourceConfig = Static<typeof SourceConfigSchema>;

export type TableEntry = readonly [name: string, spec: TableSpec];

/** The one table without `from`; a valid config has exactly one. */
export function parentTable(source: Pick<SourceConfig, 'tables'>): TableEntry {
  const parents = Object.entries(source.tables).filter(([, spec]) => spec.from === undefined);
  const [parent] = parents;
  if (parent === undefined || parents.length > 1) {
    throw new Error(`a source needs exactly one table without "from", found ${parents.length}`);
  }
  return parent;
}

/** The tables taken from arrays inside the record, in declaration order. */
export function childTables(source: Pick<SourceConfig, 'tables'>): TableEntry[] {
  return Object.entries(source.tables).filter(([, spec]) => spec.from !== undefined);
}
