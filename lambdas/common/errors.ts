import type { StageFailure } from '../../contract/ingest.ts';

/** A handled Lambda failure, with what the service needs to decide and to tell the operator. */
export class HandlerError extends Error {
  override name = 'HandlerError';
  readonly reason: string;
  readonly retryable: boolean;
  readonly httpStatus?: number;
  readonly url?: string;

  constructor(failure: StageFailure) {
    super(failure.message);
    this.reason = failure.reason;
    this.retryable = failure.retryable;
    this.httpStatus = failure.httpStatus;
    this.url = failure.url;
  }

  toFailure(): StageFailure {
    return {
      reason: this.reason,
      message: this.message,
      retryable: this.retryable,
      ...(this.httpStatus === undefined ? {} : { httpStatus: this.httpStatus }),
      ...(this.url === undefined ? {} : { url: this.url }),
    };
  }
}

/** A URL fit for an error message or a log: no user info, and secret query parameters masked. */
export function safeUrl(url: URL | string, secretParams: readonly string[] = []): string {
  const copy = new URL(url.toString());
  copy.username = '';
  copy.password = '';
  for (const name of secretParams) if (copy.searchParams.has(name)) copy.searchParams.set(name, '***');
  return copy.toString();
}
