import { Type } from 'typebox';

export const ErrorSchema = Type.Object(
  {
    statusCode: Type.Integer(),
    error: Type.String(),
    message: Type.String({
      description: 'What was wrong, naming the field, the resource or the dependency.',
    }),
    requestId: Type.String(),
  },
  { $id: 'Error', description: 'Every error the API returns has this shape.' },
);

export const ErrorRef = Type.Ref('Error');

/**
 * The error responses every authenticated route can give: 503 names MySQL or Redis when one is down (the
 * routes that start work refuse while Redis is down and write nothing; every route that reads or writes MySQL
 * answers 503 while it is down).
 */
export const AUTH_ERRORS = { 401: ErrorRef, 429: ErrorRef, 503: ErrorRef } as const;

export const IdParams = Type.Object(
  { id: Type.Integer({ minimum: 1, maximum: 4294967295, description: 'A run id.' }) },
  { additionalProperties: false },
);
