import type { ErrorInfo } from '../types.ts';

/** An error the API reported: a run's or a job's (reason, message, stage, logs), or a failed call. */
export function ErrorBox({ error, title = 'Error' }: { error: ErrorInfo; title?: string }) {
  return (
    <section class="error-box" aria-labelledby="run-error-title" data-testid="run-error">
      <h2 id="run-error-title">{title}</h2>
      <p class="reason">
        <code>{error.reason}</code>
        {error.stage ? ` in ${error.stage}` : ''}
        {error.attempt ? `, attempt ${error.attempt}` : ''}
        {error.httpStatus ? `, HTTP ${error.httpStatus}` : ''}
      </p>
      <p class="message">{error.message}</p>
      {error.url ? (
        <p>
          URL: <code>{error.url}</code>
        </p>
      ) : null}
      {error.logs ? (
        <p>
          Logs: <code class="wrap">{error.logs}</code>
        </p>
      ) : null}
    </section>
  );
}

/** A message from a failed call, for a form or a view; role=alert so it is read out. */
export function Problem({ error }: { error: Error | string | undefined }) {
  if (!error) return null;
  return (
    <p class="problem" role="alert">
      {typeof error === 'string' ? error : error.message}
    </p>
  );
}
