import { Type } from 'typebox';

export const RejectsQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
    cursor: Type.Optional(
      Type.String({ minLength: 1, maxLength: 200, description: '`nextCursor` of the previous page.' }),
    ),
  },
  { additionalProperties: false },
);

const RejectedLineSchema = Type.Object({
  record: Type.Unknown({ description: 'The record as the source sent it.' }),
  source: Type.Object({
    file: Type.String({ description: 'The raw part it came from.' }),
    line: Type.Integer(),
  }),
  errors: Type.Array(
    Type.Object({
      path: Type.String({ description: 'JSON Pointer into the record.' }),
      message: Type.String(),
    }),
  ),
});

export const RejectsPageSchema = Type.Object({
  items: Type.Array(RejectedLineSchema),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
  total: Type.Integer({ description: 'How many records the run rejected in all.' }),
});
