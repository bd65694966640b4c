import { Ajv, type Options } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

/** An ISO date (2026-01-31) or an RFC 3339 date-time that is a real calendar instant (no 2026-02-30). */
export function isIsoDate(value: string): boolean {
  const match = /^(\d{4})-(\d{2})-(\d{2})(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/.exec(
    value,
  );
  if (!match) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  const sameDay =
    date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
  return sameDay && !Number.isNaN(Date.parse(value));
}

function ajv(options: Options): Ajv {
  const instance = new Ajv({
    useDefaults: true,
    // A misspelt field must be an error, not silently dropped (Fastify's default removes it).
    removeAdditional: false,
    // One error per request: allErrors lets a crafted body make ajv do unbounded work.
    allErrors: false,
    strict: false,
    ...options,
  });
  addFormats.default(instance);
  instance.addFormat('iso-date', { type: 'string', validate: isIsoDate });
  return instance;
}

/**
 * Fastify validates every part of a request with one ajv, which coerces types everywhere. Coercion is right for
 * the querystring, params and headers (they are text on the wire) and wrong for a JSON body, where
 * `{"source": 42}` must be refused rather than read as "42". So bodies get their own non-coercing ajv.
 */
export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const text = ajv({ coerceTypes: 'array' });
  const json = ajv({ coerceTypes: false });
  return ({ schema, httpPart }) => (httpPart === 'body' ? json : text).compile(schema as object);
}
