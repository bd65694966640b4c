import { Type, type Static, type TSchema, type TUnsafe } from 'typebox';
import { ENGINES, STEP_ENGINES } from '../../../contract/source-config.ts';
import { STAGES } from '../../../contract/stages.ts';
import { JSON_TYPES } from '../../../contract/validate.ts';
import { STATUSES, Trigger } from '../../state/status.ts';

/**
 * `schema` or null, as a JSON Schema `type` list (with null among an enum's values) rather than TypeBox's anyOf.
 * The two mean the same, but fast-json-stringify writes a type list by the value's type, and an anyOf by trying
 * its branches with ajv one by one: that was a third of the time to serialize a run (bench/README.md, `api`).
 */
function Nullable<T extends TSchema>(schema: T, options: object = {}): TUnsafe<Static<T> | null> {
  const { type, enum: values, ...rest } = schema as { type?: unknown; enum?: unknown[] };
  const types: string[] = values
    ? [...new Set(values.map((v) => typeof v))]
    : typeof type === 'string'
      ? [type]
      : [];
  if (types.length === 0)
    throw new Error(`Nullable takes a schema of one type or an enum, not ${JSON.stringify(schema)}`);
  return Type.Unsafe<Static<T> | null>({
    ...rest,
    ...options,
    type: [...types, 'null'],
    ...(values ? { enum: [...values, null] } : {}),
  });
}

const StatusSchema = Type.Enum(STATUSES);
const StageSchema = Type.Enum([...STAGES]);
const Timestamp = Nullable(Type.String({ format: 'date-time' }));

/** What a caller may ask for on POST /runs (a replay too) and on a retry. */
export const EngineField = Type.Enum([...ENGINES], {
  description:
    "The engine of the run's transform and load: `embedded` (DuckDB in the worker), `spark`, or `auto` (embedded " +
    "up to AFLUENTE_EMBEDDED_MAX_BYTES of validated data, Spark above). Over the source's `engine`; stored as " +
    '`params.engine`.',
});
const EngineUsed = Nullable(Type.Enum([...STEP_ENGINES]));

const ErrorInfoSchema = Nullable(
  Type.Object({
    reason: Type.String(),
    message: Type.String(),
    stage: Type.Optional(StageSchema),
    attempt: Type.Optional(Type.Integer()),
    logs: Type.Optional(Type.String()),
    httpStatus: Type.Optional(Type.Integer()),
    url: Type.Optional(Type.String()),
  }),
);

export const CreateRunBody = Type.Object(
  {
    source: Type.String({ minLength: 1, maxLength: 64, description: 'A source name from the sources file.' }),
    params: Type.Optional(
      Type.Object(
        {
          from: Type.Optional(
            Type.String({ format: 'iso-date', description: 'Start of the window (inclusive).' }),
          ),
          to: Type.Optional(
            Type.String({ format: 'iso-date', description: 'End of the window (exclusive).' }),
          ),
          cursor: Type.Optional(
            Type.String({
              minLength: 1,
              maxLength: 1024,
              description: "Overrides the source's stored cursor.",
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    from: Type.Optional(
      Type.Object(
        {
          run: Type.Integer({ minimum: 1, maximum: 4294967295, description: 'The earlier run to replay.' }),
          stage: Type.Enum(['validate', 'transform', 'load'], {
            description: 'The stage the replay starts at; it reads what the earlier run committed before it.',
          }),
        },
        {
          additionalProperties: false,
          description:
            'A replay: the new run starts at `stage` on the lake files run `run` committed, without calling ' +
            'the API (re-validate raw data after a schema fix, say). Replaying a committed load changes no rows.',
        },
      ),
    ),
    engine: Type.Optional(EngineField),
  },
  { additionalProperties: false },
);
export type CreateRunBody = Static<typeof CreateRunBody>;

const AcceptKeyChangeField = Type.Boolean({
  description:
    "Load even though a table's key, parentKey or `from` differs from the one its warehouse rows were loaded " +
    'with, which the load otherwise refuses: for after the operator dropped or renamed those warehouse tables, ' +
    'so the load creates them anew. Stored as `params.acceptKeyChange`.',
});

/**
 * A retry's body: `{engine?, acceptKeyChange?}`, or none at all (which Fastify reads as null). One schema rather
 * than a union with null, so a bad field gets one message that names it.
 */
export const RetryRunBody = Type.Unsafe<{
  engine?: Static<typeof EngineField>;
  acceptKeyChange?: boolean;
} | null>({
  type: ['object', 'null'],
  properties: { engine: EngineField, acceptKeyChange: AcceptKeyChangeField },
  additionalProperties: false,
});

export const CreateRunHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[\\x21-\\x7E]+$',
      description: 'Makes a retried POST return the run the first one created.',
    }),
  ),
});

export const ListRunsQuery = Type.Object(
  {
    source: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    status: Type.Optional(StatusSchema),
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
    cursor: Type.Optional(
      Type.String({ minLength: 1, maxLength: 200, description: '`nextCursor` of the previous page.' }),
    ),
  },
  { additionalProperties: false },
);
export type ListRunsQuery = Static<typeof ListRunsQuery>;

export const RunSchema = Type.Object(
  {
    id: Type.Integer(),
    source: Type.String(),
    trigger: Type.Enum(Object.values(Trigger)),
    status: StatusSchema,
    plan: Type.Array(StageSchema),
    stage: Nullable(StageSchema),
    attempt: Type.Integer(),
    params: Nullable(Type.Object({}, { additionalProperties: true })),
    counts: Type.Object({
      fetched: Nullable(Type.Integer()),
      valid: Nullable(Type.Integer()),
      rejected: Nullable(Type.Integer()),
      rows: Nullable(Type.Record(Type.String(), Type.Integer())),
    }),
    error: ErrorInfoSchema,
    cancelledBy: Nullable(Type.String()),
    replayOf: Nullable(Type.Integer(), {
      description: 'On a replay: the run whose committed lake files its first stage read.',
    }),
    backfill: Nullable(Type.Integer(), {
      description: 'The backfill this run is a window of (GET /backfills/:id).',
    }),
    schemaVersion: Nullable(Type.Integer(), {
      description:
        "The schema version (its source's table spec) its load handed the load step, recorded as the load " +
        'started (GET /sources/:name/schema); null before its load started.',
    }),
    engine: Nullable(Type.Enum([...STEP_ENGINES]), {
      description: 'The engine of its latest transform or load step (null before one started).',
    }),
    engineReason: Nullable(Type.String(), {
      description:
        'Why that engine: `requested on the run`, `source config engine: spark`, `auto: validated …`.',
    }),
    queuedBehind: Type.Optional(
      Type.Array(Type.Integer(), {
        description:
          "Only on a run waiting for a slot under its source's maxActiveRuns: the active runs it waits behind.",
      }),
    ),
    createdAt: Type.String({ format: 'date-time' }),
    startedAt: Timestamp,
    finishedAt: Timestamp,
    links: Type.Object({ self: Type.String() }),
  },
  { $id: 'Run' },
);

export const JobSchema = Type.Object(
  {
    id: Type.Integer(),
    stage: StageSchema,
    runAttempt: Type.Integer(),
    status: StatusSchema,
    attempt: Type.Integer(),
    maxAttempts: Type.Integer(),
    externalId: Nullable(Type.String()),
    engine: EngineUsed,
    engineReason: Nullable(Type.String()),
    heartbeatAt: Timestamp,
    params: Nullable(Type.Object({}, { additionalProperties: true })),
    metrics: Nullable(Type.Object({}, { additionalProperties: true })),
    error: ErrorInfoSchema,
    createdAt: Type.String({ format: 'date-time' }),
    startedAt: Timestamp,
    finishedAt: Timestamp,
    deadlineAt: Nullable(Type.String({ format: 'date-time' }), {
      description:
        "When an open stage that has started must have finished (its source's deadlineSeconds); past it, the " +
        'stage fails with deadline_exceeded.',
    }),
  },
  { $id: 'Job' },
);

export const LakeFileSchema = Type.Object(
  {
    uri: Type.String(),
    layer: Type.String(),
    table: Nullable(Type.String()),
    records: Nullable(Type.Integer()),
    bytes: Type.Integer(),
    sha256: Nullable(Type.String()),
    producedBy: Type.Object({ jobId: Type.Integer(), stage: StageSchema }),
  },
  { $id: 'LakeFile' },
);

const DriftProperties = {
  records: Type.Integer({
    description: 'The records the counts are out of: every record the run validated.',
  }),
  fields: Type.Array(
    Type.Object({
      path: Type.String({
        description:
          'Dot path from the record root; `[]` steps into a child table’s array: `items[].discount`.',
      }),
      type: Type.Enum([...JSON_TYPES], {
        description: 'The JSON type it had; a field seen with two has two entries.',
      }),
      count: Type.Integer({ description: 'How many records hold it.' }),
      sample: Type.String({ description: 'One value it had, as JSON text cut to 80 characters.' }),
    }),
    { description: 'Most frequent first.' },
  ),
  truncated: Type.Boolean({
    description:
      'More than 200 distinct (path, type) pairs were seen (a map keyed by ids, say): the others are not listed.',
  }),
};

/** Fields no column names (drift), as counted by a validate stage. */
export const DriftSchema = Type.Object(DriftProperties);

/** A source's drift: that of its latest run that validated. */
export const SourceDriftSchema = Nullable(
  Type.Object({
    run: Type.Integer({ description: 'The run that counted it.' }),
    ...DriftProperties,
  }),
  {
    description:
      "Fields no column names in the records of the source's latest run that validated; null before one did.",
  },
);

export const RunDetailSchema = Type.Object({
  ...RunSchema.properties,
  drift: Nullable(DriftSchema, {
    description:
      "Fields of the run's records that no column names, counted by its latest validate stage; null before " +
      'one did. With the source’s `onDrift: fail` the run fails on any (reason `schema_drift`).',
  }),
  jobs: Type.Array(Type.Ref('Job')),
  files: Type.Array(Type.Ref('LakeFile')),
});

export const RunPageSchema = Type.Object({
  items: Type.Array(Type.Ref('Run')),
  nextCursor: Nullable(Type.String()),
});
