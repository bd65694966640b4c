import type {
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifyServerOptions,
} from 'fastify';
import type { FastifySchemaValidationError, SchemaErrorDataVar } from 'fastify/types/schema.js';
import { DomainError } from '../errors.ts';
import { IllegalTransitionError } from '../state/transitions.ts';

/**
 * Turns ajv's errors into one sentence an API user can act on, such as
 * `body.params.from must be an ISO date (2026-01-31 or 2026-01-31T12:00:00Z)`. Fastify's default
 * (`body/params/from must match format "date-time"`) names the field but not what to send.
 */
export function formatSchemaErrors(
  errors: FastifySchemaValidationError[],
  dataVar: SchemaErrorDataVar,
): Error {
  const messages = errors.map((e) => {
    const base = `${dataVar}${e.instancePath.replaceAll('/', '.')}`;
    const params = e.params;
    switch (e.keyword) {
      case 'required':
        return `${base}.${String(params.missingProperty)} is required`;
      case 'additionalProperties':
        return `${base}.${String(params.additionalProperty)} is not allowed`;
      case 'format':
        return `${base} ${FORMAT_HINTS[String(params.format)] ?? `must be a valid ${String(params.format)}`}`;
      case 'enum':
        return `${base} must be one of ${(params.allowedValues as unknown[]).join(', ')}`;
      default:
        return `${base} ${e.message ?? 'is invalid'}`;
    }
  });
  return new Error([...new Set(messages)].join('; '));
}

const FORMAT_HINTS: Record<string, string> = {
  'iso-date': 'must be an ISO date (2026-01-31 or 2026-01-31T12:00:00Z)',
  'date-time': 'must be an ISO date-time (2026-01-31T12:00:00Z)',
};

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
  requestId: string;
}

// Fastify's own wording for these two doesn't say what to send instead.
function clientErrorMessage(error: FastifyError, contentType: string | undefined, bodyLimit: number): string {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return `unsupported content type "${contentType ?? ''}": send a JSON body with Content-Type: application/json`;
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `request body is larger than ${bodyLimit} bytes (AFLUENTE_BODY_LIMIT_BYTES)`;
    default:
      return error.message;
  }
}

const STATUS_NAMES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

function errorBody(statusCode: number, message: string, requestId: string): ErrorBody {
  return { statusCode, error: STATUS_NAMES[statusCode] ?? 'Error', message, requestId };
}

/**
 * The router answers a few requests before any hook or error handler runs: a path parameter longer than
 * `maxParamLength`, a URL that does not decode. Fastify's `frameworkErrors` option is the only way to give
 * them the API's error shape instead of Fastify's raw body.
 */
export function frameworkErrors(maxParamLength: number): FastifyServerOptions['frameworkErrors'] {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    let statusCode: number;
    let message: string;
    switch (error.code) {
      case 'FST_ERR_MAX_PARAM_LENGTH':
        statusCode = 414;
        message = `a path parameter is longer than ${maxParamLength} characters, the most the API accepts`;
        break;
      case 'FST_ERR_BAD_URL':
        statusCode = 400;
        message = `the URL path ${request.url.split('?')[0]} is not valid percent-encoding`;
        break;
      default:
        statusCode = 500;
        message = `internal error; quote request id ${request.id} to an operator`;
    }
    if (statusCode >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ statusCode, message }, 'request rejected');
    // The root onSend hook that sets x-request-id does not run for these replies.
    void reply
      .code(statusCode)
      .header('x-request-id', request.id)
      .send(errorBody(statusCode, message, request.id));
  };
}

/**
 * One error handler for the whole API: domain errors map to their status, a client's mistake stays a 4xx
 * with its message, and a 5xx hides its details from the client and logs them with the request id. A failure
 * that a MySQL or Redis outage explains is a 503 naming the dependency: the client should retry, and the outage
 * is logged once (`app.dependencies`), not once per request.
 */
export function registerErrorHandling(app: FastifyInstance, { bodyLimit }: { bodyLimit: number }): void {
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    let statusCode: number;
    let message: string;
    let unexpected = false;
    if (error.validation) {
      statusCode = 400;
      message = error.message;
    } else if (error instanceof DomainError) {
      statusCode = error.statusCode;
      message = error.message;
      unexpected = statusCode === 500;
    } else if (error instanceof IllegalTransitionError) {
      statusCode = 409;
      message = error.message;
    } else if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      statusCode = error.statusCode;
      message = clientErrorMessage(error, request.headers['content-type'], bodyLimit);
    } else {
      // The error handler is set before the plugins, so a failure while they register finds none.
      const down = app.hasDecorator('dependencies') ? await app.dependencies.down() : [];
      if (down.length > 0) {
        request.log.debug({ err: error, down }, 'request failed: a dependency is down');
        statusCode = 503;
        message = app.dependencies.unavailable(down, 'retry later').message;
      } else {
        statusCode = error.statusCode === 503 ? 503 : 500;
        message = `internal error; quote request id ${request.id} to an operator`;
        unexpected = true;
      }
    }
    if (unexpected) request.log.error({ err: error }, 'request failed');
    else request.log.info({ statusCode, message }, 'request rejected');
    return reply.code(statusCode).send(errorBody(statusCode, message, request.id));
  });

  app.setNotFoundHandler((request, reply) => {
    const message = `route ${request.method} ${request.url.split('?')[0]} not found`;
    return reply.code(404).send(errorBody(404, message, request.id));
  });
}
