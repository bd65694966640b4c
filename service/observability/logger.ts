import { pino, type BaseLogger, type LoggerOptions } from 'pino';

/** The logger every class takes: pino's, and Fastify's `app.log`, both fit. */
export interface Logger extends Pick<
  BaseLogger,
  'level' | 'info' | 'error' | 'debug' | 'fatal' | 'warn' | 'trace'
> {
  child(bindings: Record<string, unknown>): Logger;
}

/**
 * Paths pino blanks in every log line. Secrets reach the service only as request headers or as environment
 * variables named in config; neither may appear in a log, whatever object carries them.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  '*.headers.authorization',
  // pino has no recursive wildcard, so secret-named fields are covered one and two levels deep.
  ...['authorization', 'password', 'token', 'secret', 'apiKey'].flatMap((f) => [f, `*.${f}`, `*.*.${f}`]),
];

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    base: { service: 'afluente' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return destination ? pino(loggerOptions(level), destination) : pino(loggerOptions(level));
}
