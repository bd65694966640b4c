import { Type, type Static } from 'typebox';
import { STAGES } from '../../../contract/stages.ts';
import { STATUSES } from '../../state/status.ts';

export const CreateBackfillBody = Type.Object(
  {
    from: Type.String({
      format: 'iso-date',
      description: 'Start of the range (inclusive): a date or date-time.',
    }),
    to: Type.String({ format: 'iso-date', description: 'End of the range (exclusive).' }),
    step: Type.String({
      minLength: 2,
      maxLength: 32,
      description: 'The window length, an ISO-8601 duration: P1D, PT6H, P1W. The last window ends at `to`.',
    }),
  },
  { additionalProperties: false },
);
export type CreateBackfillBody = Static<typeof CreateBackfillBody>;

const Count = Type.Integer({ minimum: 0 });

export const BackfillSchema = Type.Object(
  {
    id: Type.Integer(),
    source: Type.String(),
    from: Type.String({ format: 'date-time' }),
    to: Type.String({ format: 'date-time' }),
    step: Type.String(),
    status: Type.Enum(STATUSES, {
      description:
        'From its runs: RUNNING while any run has not finished; then FAILED if any failed, CANCELLED if any ' +
        'was cancelled, else COMPLETED.',
    }),
    progress: Type.Object({
      total: Count,
      pending: Count,
      running: Count,
      completed: Count,
      failed: Count,
      cancelled: Count,
    }),
    counts: Type.Object(
      {
        fetched: Count,
        valid: Count,
        rejected: Count,
        rows: Type.Record(Type.String(), Count),
      },
      { description: 'Summed over the runs, as far as each got.' },
    ),
    runs: Type.Array(
      Type.Object({
        id: Type.Integer(),
        status: Type.Enum(STATUSES),
        stage: Type.Union([Type.Enum([...STAGES]), Type.Null()]),
        window: Type.Object({ from: Type.String(), to: Type.String() }),
      }),
      { description: 'One run per window, oldest window first.' },
    ),
    createdBy: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    links: Type.Object({ self: Type.String() }),
  },
  { $id: 'Backfill' },
);
