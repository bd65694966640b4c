import { Type, type Static, type TSchema } from 'typebox';

// GET /sources/:name/schema: a source's schema versions and the diff between two of them.

const Id = Type.Integer({ minimum: 1, maximum: 4294967295 });
const OrNull = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const Instant = OrNull(Type.String({ format: 'date-time' }));

export const SourceSchemaQuery = Type.Object(
  {
    from: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 4294967295,
        description: 'A schema version id of this source; default: the latest loaded version.',
      }),
    ),
    to: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 4294967295,
        description: "A schema version id of this source; default: the source's current config.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type SourceSchemaQuery = Static<typeof SourceSchemaQuery>;

const TableKeySchema = Type.Object(
  {
    key: Type.Array(Type.String()),
    parentKey: OrNull(Type.Record(Type.String(), Type.String())),
    from: OrNull(Type.String()),
  },
  {
    description:
      "What identifies a table's rows: its key; for a child, its parentKey and the array it is from.",
  },
);

const ColumnSchema = Type.Object({
  column: Type.String(),
  type: Type.String(),
  path: OrNull(Type.String()),
});

const TableShapeSchema = Type.Object({
  table: Type.String(),
  key: TableKeySchema,
  columns: Type.Array(ColumnSchema),
});

const Change = Type.Object({ column: Type.String(), from: Type.String(), to: Type.String() });

const DiffEnd = Type.Object({
  versionId: OrNull(Id),
  hash: OrNull(Type.String()),
  label: Type.String({ description: '`version 3`, `the current config (version 4)`, `nothing loaded`.' }),
});

export const SourceSchemaView = Type.Object({
  source: Type.String(),
  current: Type.Object(
    { hash: Type.String(), versionId: OrNull(Id) },
    {
      description:
        "The source's current config: the hash of its table spec, and its version, or null when no load has " +
        'started with it yet (the next load adds it).',
    },
  ),
  latestLoadedId: OrNull(Id),
  versions: Type.Array(
    Type.Object({
      id: Id,
      hash: Type.String({
        description: 'sha256 of the canonical JSON of the spec: tables and cursor column.',
      }),
      current: Type.Boolean({ description: 'Whether it is the current config.' }),
      tables: Type.Array(Type.String()),
      createdAt: Type.String({ format: 'date-time' }),
      firstLoadedAt: Instant,
      lastLoadedAt: Instant,
      runs: Type.Integer({ minimum: 0, description: 'COMPLETED runs whose load was of this version.' }),
      latestRunId: OrNull(Id),
    }),
    { description: 'Oldest first. A version is added when the first load with its spec starts.' },
  ),
  diff: Type.Object(
    {
      from: DiffEnd,
      to: DiffEnd,
      unchanged: Type.Boolean(),
      tablesAdded: Type.Array(TableShapeSchema),
      tablesRemoved: Type.Array(TableShapeSchema, {
        description: 'The warehouse keeps them; loads stop writing them.',
      }),
      tablesChanged: Type.Array(
        Type.Object({
          table: Type.String(),
          columnsAdded: Type.Array(ColumnSchema),
          columnsRemoved: Type.Array(ColumnSchema, {
            description: 'The warehouse keeps them, NULL in rows loaded later.',
          }),
          typesChanged: Type.Array(Change),
          pathsChanged: Type.Array(Change),
          keyChanged: OrNull(Type.Object({ from: TableKeySchema, to: TableKeySchema })),
        }),
      ),
      cursorColumn: OrNull(Type.Object({ from: OrNull(Type.String()), to: OrNull(Type.String()) })),
    },
    {
      description:
        'From `from` to `to`; by default from the latest loaded version (nothing: every table is added) to the ' +
        'current config, which is what the next load changes.',
    },
  ),
});
export type SourceSchemaView = Static<typeof SourceSchemaView>;
