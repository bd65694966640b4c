// Reads the record that Lambda's async-invoke destinations put on the events queue, and turns it into the
// InvocationEvent the waiting worker expects. The record's shape is AWS's (Lambda developer guide, "Capturing
// records of Lambda asynchronous invocations"); only the fields used here are required, so fields AWS adds
// later pass through.
import { Ajv, type ErrorObject } from 'ajv';
import { Type, type Static } from 'typebox';
import type { StageFailure } from '../../contract/ingest.ts';
import type { FunctionName, Functions, InvocationEvent } from '../../contract/invocation.ts';

/** A message that no retry can make valid: it must not be delivered, and goes to the DLQ instead. */
export class PoisonMessageError extends Error {
  override name = 'PoisonMessageError';
}

const SUCCESS = 'Success';

const DestinationRecordSchema = Type.Object({
  requestContext: Type.Object({
    requestId: Type.String({ minLength: 1 }),
    functionArn: Type.String({ minLength: 1 }),
    // Success, RetriesExhausted or EventAgeExceeded today; it becomes part of a reason and an event id.
    condition: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9]*$' }),
    approximateInvokeCount: Type.Optional(Type.Integer()),
  }),
  // Our own request, as sent: every request carries the id its waiter listens on.
  requestPayload: Type.Object({ invocationId: Type.String({ minLength: 1 }) }),
  responseContext: Type.Optional(
    Type.Object({
      statusCode: Type.Optional(Type.Integer()),
      functionError: Type.Optional(Type.String()),
    }),
  ),
  // The handler's return value on success; the runtime's error object on failure; absent when the event expired.
  responsePayload: Type.Optional(Type.Unknown()),
});
type DestinationRecord = Static<typeof DestinationRecordSchema>;

const validateRecord = new Ajv({ allErrors: true }).compile<DestinationRecord>(DestinationRecordSchema);

export interface ParsedRecord {
  /** Identifies this result: a redelivered or duplicated record has the same id, so it is delivered once. */
  eventId: string;
  event: InvocationEvent;
}

/**
 * Parses an SQS message body holding a Lambda destination record.
 *
 * @param functionNames our function for each deployed Lambda function name (the name part of its ARN).
 * @throws PoisonMessageError when the body is not a destination record for one of our functions.
 */
export function parseDestinationRecord(
  body: string,
  functionNames: Record<string, FunctionName>,
): ParsedRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    throw new PoisonMessageError(`the message body is not JSON (${(error as Error).message})`);
  }
  if (!validateRecord(parsed)) {
    throw new PoisonMessageError(
      `the message is not a Lambda destination record: ${describe(validateRecord.errors)}`,
    );
  }
  const record = parsed;
  const { requestId, functionArn, condition } = record.requestContext;
  const fn = ourFunction(functionArn, functionNames);
  const invocationId = record.requestPayload.invocationId;
  // A retried invoke keeps its request id; a request can have a success and a failure record.
  const eventId = `${requestId}:${condition}`;

  if (condition === SUCCESS) {
    const result = record.responsePayload;
    // Every handler returns an object; anything else means the record is not from the handler we deployed.
    if (typeof result !== 'object' || result === null || Array.isArray(result)) {
      throw new PoisonMessageError(
        `the Success record of ${fn} invocation ${invocationId} has no result object in responsePayload`,
      );
    }
    return {
      eventId,
      event: {
        invocationId,
        function: fn,
        outcome: 'success',
        result: result as Functions[FunctionName]['result'],
      },
    };
  }
  return {
    eventId,
    event: { invocationId, function: fn, outcome: 'failure', error: failure(fn, record) },
  };
}

function ourFunction(arn: string, functionNames: Record<string, FunctionName>): FunctionName {
  // arn:<partition>:lambda:<region>:<account>:function:<name>[:<version or alias>]
  const parts = arn.split(':');
  const name = parts[6];
  if (parts[0] !== 'arn' || parts[2] !== 'lambda' || parts[5] !== 'function' || !name) {
    throw new PoisonMessageError(`requestContext.functionArn "${arn}" is not a Lambda function ARN`);
  }
  if (!Object.hasOwn(functionNames, name)) {
    const known = Object.keys(functionNames).join(', ') || 'none configured';
    throw new PoisonMessageError(`unknown Lambda function "${name}" (${arn}); known: ${known}`);
  }
  return functionNames[name] as FunctionName;
}

function failure(fn: FunctionName, record: DestinationRecord): StageFailure {
  const { condition } = record.requestContext;
  const payload = record.responsePayload;
  const error = typeof payload === 'object' && payload !== null ? (payload as Record<string, unknown>) : {};
  const errorType = stringOr(error.errorType, record.responseContext?.functionError);
  const errorMessage = stringOr(
    error.errorMessage,
    typeof payload === 'string' ? payload : undefined,
    'no error message (the event may have expired before it ran)',
  );
  const why = errorType ? `${condition}, ${errorType}` : condition;
  return {
    reason: `lambda_${snakeCase(condition)}`,
    message: `${fn} Lambda failed (${why}): ${errorMessage}`,
    // Lambda has already given up on this event; a new invocation (the job's next attempt) may well succeed.
    retryable: true,
  };
}

function stringOr(...candidates: unknown[]): string | undefined {
  return candidates.find((c): c is string => typeof c === 'string' && c !== '');
}

function snakeCase(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

function describe(errors: readonly ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .map(
      (e) => `${e.instancePath ? e.instancePath.slice(1).replaceAll('/', '.') : 'the record'} ${e.message}`,
    )
    .join('; ');
}
