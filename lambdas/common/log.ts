import { pino } from 'pino';
import type { FunctionName } from '../../contract/invocation.ts';

/** What the Lambdas log with: pino's own, or a test's stand-in. */
export interface LambdaLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

/**
 * A Lambda's log: one JSON line per event on stdout, shaped like the service's (`level` by name, ISO `time`), so
 * CloudWatch Logs Insights on AWS, or the service's own stdout when the Lambda runs as its child process, reads
 * both alike. Only what the caller passes goes in: URLs without credentials, never a header.
 */
export function lambdaLog(fn: FunctionName, env: NodeJS.ProcessEnv = process.env): LambdaLog {
  return pino({
    level: env.AFLUENTE_LOG_LEVEL ?? 'info',
    base: { service: 'afluente', fn },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
